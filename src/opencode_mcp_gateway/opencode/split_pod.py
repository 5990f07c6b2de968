"""The chart's pod: the gateway and OpenCode in two containers, the secrets in one.

OpenCode's agent runs shell commands as OpenCode's user, so it can read whatever OpenCode can:
its environment, the files of its container, and (same user, shared PID namespace) the
/proc/<pid>/environ of every process above it. In spawn mode that includes the gateway. So in
a cluster OpenCode runs in a container of its own (`opencode-mcp-gateway opencode`), which is
given no secret of the gateway's: not the provider's API key, not the git credentials, not the
callers' tokens or API keys file. It reaches the model only through the gateway's LLM proxy on
the pod's loopback (LLM_PROXY_PORT, under LLM_PROXY_TOKEN), exactly as a spawned OpenCode does.
The gateway container treats it as an external OpenCode at OPENCODE_BASE_URL. See
docs/design.md, "The agent's boundary".
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

import anyio

from .config import given

if TYPE_CHECKING:
    from .config import Settings
    from .supervisor import OpenCodeSupervisor

log = logging.getLogger(__name__)

# Settings that hold a secret of the gateway's, or the path to one: never the OpenCode container's.
GATEWAY_ONLY = (
    "opencode_api_key",
    "mcp_bearer_token",
    "request_state_key",
    "git_credentials_file",
    "mcp_api_keys_file",
)
OPENCODE_NEEDS = ("opencode_model_name", "llm_proxy_port", "llm_proxy_token", "opencode_password")
GATEWAY_PROXY_NEEDS = ("opencode_api_url", "opencode_api_key", "llm_proxy_token")


def _names(settings: Settings, fields: tuple[str, ...], *, present: bool) -> str:
    return ", ".join(name.upper() for name in fields if given(getattr(settings, name)) == present)


def split_pod_problem(settings: Settings) -> str | None:
    """Why these settings cannot make one side of the split pod (None: they can)."""
    if settings.opencode_only:
        if settings.spawn_opencode:
            return "`opencode-mcp-gateway opencode` runs OpenCode alone: unset SPAWN_OPENCODE for it"
        held = _names(settings, GATEWAY_ONLY, present=True)
        if held:
            return (
                f"{held}: not for the OpenCode container (`opencode-mcp-gateway opencode`), whose agent can "
                "read everything OpenCode can; give it to the gateway's container only"
            )
        missing = _names(settings, OPENCODE_NEEDS, present=False)
        if missing:
            return (
                f"{missing}: required by `opencode-mcp-gateway opencode` (the model's name, the gateway's "
                "LLM proxy port and token, and OpenCode's server password, which the gateway is given too)"
            )
    elif settings.llm_proxy_port is not None and not settings.spawn_opencode:
        missing = _names(settings, GATEWAY_PROXY_NEEDS, present=False)
        if missing:
            return (
                f"{missing}: required with LLM_PROXY_PORT, where the gateway serves its OpenCode container "
                "the model provider (OPENCODE_API_URL, with OPENCODE_API_KEY) to callers holding LLM_PROXY_TOKEN"
            )
    return None


def run_opencode_only(settings: Settings) -> None:
    """The OpenCode container: keep `opencode serve` running (configured as spawn mode does)
    until SIGTERM or SIGINT, then stop it gracefully."""
    from .supervisor import OpenCodeSupervisor

    supervisor = OpenCodeSupervisor(settings)
    log.info(
        "OpenCode only: opencode serve on %s:%s, its model through the gateway's LLM proxy at %s",
        settings.opencode_listen_host,
        settings.opencode_port,
        supervisor.llm_url,
    )
    anyio.run(_until_signalled, supervisor)


async def _until_signalled(supervisor: OpenCodeSupervisor) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:
            tg.start_soon(supervisor.run)
            async for received in signals:
                log.info("%s: stopping opencode serve", signal.Signals(received).name)
                break
            await supervisor.stop()
            tg.cancel_scope.cancel()
