"""Start-up policy: the gateway never serves the network without authentication by accident.

Anyone who can call `run_coding_task` makes an agent run shell commands, so a gateway bound
to a non-loopback address must authenticate its callers, unless the operator opts out
explicitly with ALLOW_UNAUTHENTICATED=true (e.g. behind an authenticating proxy).
"""

from __future__ import annotations

from pydantic import SecretStr

from .config import Settings

# Every setting that, when given, makes callers authenticate. Each way to authenticate
# adds its setting here (and its authenticator to the HTTP guard).
AUTH_SETTINGS: tuple[str, ...] = ("mcp_bearer_token",)


def configured_auth(settings: Settings) -> list[str]:
    """The environment names of the authentication settings that are given."""
    return [name.upper() for name in AUTH_SETTINGS if _given(getattr(settings, name, None))]


def exposure_refusal(settings: Settings) -> str | None:
    """One line saying why these settings must not be served, or None when they may."""
    if settings.binds_loopback or settings.allow_unauthenticated or configured_auth(settings):
        return None
    ways = " or ".join(name.upper() for name in AUTH_SETTINGS)
    return (
        f"refusing to serve HOST={settings.host} without authentication: anyone who reaches it could run "
        f"coding tasks. Set {ways}, bind HOST=127.0.0.1, or set ALLOW_UNAUTHENTICATED=true to accept "
        "unauthenticated callers on purpose"
    )


def _given(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return isinstance(value, str) and bool(value.strip())
