"""The SDK floor for the overhead benchmark: a bare MCPServer with one echo tool, served
with the same transport settings as the gateway (stateful, SSE responses).

Given OpenCode's URL as well, it serves instead one tool per measured gateway tool that makes
the same OpenCode calls and returns what they answered: what any MCP tool that calls
OpenCode costs on this machine, the reference for how much of a call is the gateway's own."""

from __future__ import annotations

import sys
from typing import Any

import httpx2
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

server = MCPServer("echo")


def echo(text: str) -> str:
    """Return the text."""
    return text


def relay_to(opencode_url: str) -> None:
    """The bare tools that make the OpenCode calls of the gateway's measured ones."""
    http = httpx2.AsyncClient(base_url=opencode_url)

    async def get(path: str, **params: str) -> Any:
        return (await http.get(path, params=params)).json()

    async def bare_health_check() -> dict[str, Any]:
        """OpenCode's health."""
        return dict(await get("/global/health"))

    async def bare_list_agents() -> list[dict[str, Any]]:
        """OpenCode's agents."""
        return list(await get("/agent"))

    async def bare_get_task_status(session_id: str, directory: str, message_id: str) -> dict[str, Any]:
        """What get_task_status reads."""
        messages = await get(f"/session/{session_id}/message")
        status = await get("/session/status", directory=directory)
        diff = await get(f"/session/{session_id}/diff", messageID=message_id)
        return {"messages": len(messages), "status": status.get(session_id), "diff": diff}

    for tool in (bare_health_check, bare_list_agents, bare_get_task_status):
        server.tool()(tool)


def main() -> None:
    port = int(sys.argv[1])
    if len(sys.argv) > 2:
        relay_to(sys.argv[2])
    else:
        server.tool()(echo)
    mcp_app = server.streamable_http_app(
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )

    async def ping(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/ping", ping), Mount("/", app=mcp_app)],
        lifespan=lambda app: server.session_manager.run(),
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
