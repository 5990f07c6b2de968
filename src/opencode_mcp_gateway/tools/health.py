"""OpenCode's health as the gateway reports it (tool, /healthz and /readyz share it)."""

from __future__ import annotations

from ..opencode import OpenCodeClient, OpenCodeError
from ..tasks.views import OpenCodeHealth


async def opencode_health(client: OpenCodeClient, timeout: float = 3.0) -> OpenCodeHealth:
    try:
        data = await client.health(timeout=timeout)
    except OpenCodeError as exc:
        return OpenCodeHealth(healthy=False, url=client.display_url, error=str(exc))
    return OpenCodeHealth(healthy=bool(data.get("healthy")), version=data.get("version"), url=client.display_url)
