"""Settings of sandboxes (issue 19): one `opencode serve` per caller (or per task), each
inside an operating-system boundary, instead of one OpenCode every caller shares.

`SANDBOX` left unset means `caller` exactly when the gateway runs OpenCode itself (spawn
mode) and can tell callers apart (MCP_API_KEYS_FILE or OAUTH_ISSUER), else `off`: one
static token, or no authentication, is one trust domain, and a gateway pointed at an
OpenCode it does not run cannot put that OpenCode in a sandbox.
"""

from __future__ import annotations

import os
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from ._values import given

Scope = Literal["caller", "task", "off"]
RuntimeKind = Literal["local", "kubernetes"]
PROVIDER = ("opencode_api_url", "opencode_api_key", "opencode_model_name")


class SandboxSettings(BaseModel):
    sandbox: Scope | None = None  # None: decided from the rest (see decide_scope)
    sandbox_runtime: RuntimeKind | None = None  # None: kubernetes inside a cluster, else local
    sandbox_idle_seconds: float = Field(900.0, gt=0)
    sandbox_max: int = Field(20, ge=1, le=10_000)


class _Deciding(Protocol):
    """What the decision reads of the settings (the provider settings by name, with getattr)."""

    @property
    def sandbox(self) -> Scope | None: ...
    @property
    def spawn_opencode(self) -> bool: ...
    @property
    def mcp_api_keys_file(self) -> str | None: ...
    @property
    def oauth_issuer(self) -> str | None: ...
    @property
    def opencode_workers(self) -> str: ...
    @property
    def opencode_worker_url_template(self) -> str | None: ...


def _pool(settings: _Deciding) -> bool:
    return bool(settings.opencode_workers.strip() or settings.opencode_worker_url_template)


def decide_scope(settings: _Deciding) -> Scope:
    if settings.sandbox is not None:
        return settings.sandbox
    tells_callers_apart = given(settings.mcp_api_keys_file) or given(settings.oauth_issuer)
    runs_its_opencode = settings.spawn_opencode and not _pool(settings)
    return "caller" if runs_its_opencode and tells_callers_apart else "off"


def decide_runtime(runtime: RuntimeKind | None) -> RuntimeKind:
    if runtime is not None:
        return runtime
    return "kubernetes" if os.environ.get("KUBERNETES_SERVICE_HOST") else "local"


def sandbox_problem(settings: _Deciding) -> str | None:
    """Why these settings cannot run sandboxes (None: they can, or sandboxing is off)."""
    scope = decide_scope(settings)
    if scope == "off":
        return None
    if _pool(settings):
        return (
            f"SANDBOX={scope}: the gateway runs each sandbox's OpenCode itself, so it takes no pool of OpenCode "
            "workers (OPENCODE_WORKERS, OPENCODE_WORKER_URL_TEMPLATE); unset them or set SANDBOX=off"
        )
    missing = [name.upper() for name in PROVIDER if not given(getattr(settings, name))]
    if missing:
        return (
            f"{', '.join(missing)}: required with SANDBOX={scope} (each sandbox's OpenCode reaches the model "
            "provider through the gateway's LLM proxy, as in spawn mode)"
        )
    return None
