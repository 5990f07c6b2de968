"""`tools/list` answered from memory after its first answer in each protocol version.

The gateway's tools describe themselves in ~40 kB of JSON schema, and the MCP SDK builds,
validates and serializes that whole list again on every `tools/list` (about 9 ms of CPU on a
busy 2-core machine). A client asks for it once per session (the SDK's own client does
before its first call, to check results against the output schemas), so it was most of what
a new session cost the gateway. The tools are registered once, in `build_server`, and never
change while the process runs: the wire form the SDK produced the first time for a protocol
version is the answer every time after.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext


class ToolListCache:
    """A middleware in the MCP SDK's chain (see `mcp.middleware`)."""

    def __init__(self) -> None:
        self._wire: dict[str, HandlerResult] = {}  # protocol version → the SDK's answer

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/list" or (ctx.params or {}).get("cursor"):
            return await call_next(ctx)
        cached = self._wire.get(ctx.protocol_version)
        if cached is None:
            cached = self._wire[ctx.protocol_version] = await call_next(ctx)  # an error is not kept
        return cached
