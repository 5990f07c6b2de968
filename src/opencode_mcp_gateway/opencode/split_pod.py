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

from ..config import GATEWAY_ONLY

if TYPE_CHECKING:
    from ..config import Settings
    from .supervisor import OpenCodeSupervisor

__all__ = ["GATEWAY_ONLY", "run_opencode_only"]

log = logging.getLogger(__name__)


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
