"""Start-up policy: the gateway never serves the network without authentication by accident.

Anyone who can call `run_coding_task` makes an agent run shell commands, so a gateway bound
to a non-loopback address must authenticate its callers, unless the operator opts out
explicitly with ALLOW_UNAUTHENTICATED=true (e.g. behind an authenticating proxy).
"""

from __future__ import annotations

from ..config import AUTH_SETTINGS, Settings, auth_methods


def exposure_refusal(settings: Settings) -> str | None:
    """One line saying why these settings must not be served, or None when they may."""
    if settings.binds_loopback or settings.allow_unauthenticated or auth_methods(settings):
        return None
    ways = " or ".join(name.upper() for name in AUTH_SETTINGS)
    return (
        f"refusing to serve HOST={settings.host} without authentication: anyone who reaches it could run "
        f"coding tasks. Set {ways}, bind HOST=127.0.0.1, or set ALLOW_UNAUTHENTICATED=true to accept "
        "unauthenticated callers on purpose"
    )
