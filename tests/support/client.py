"""Driving the gateway with the MCP SDK's own client over HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp.client.session import ClientSession, ElicitationFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


class ProgressLines:
    """A progress callback that keeps the messages."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.lines.append(message or "")


def script(*steps: dict[str, Any], say: str = "Do the scripted work.") -> str:
    """A prompt the fake LLM plays back step by step."""
    return f"{say}\nFAKE_SCRIPT: {json.dumps(list(steps))}"


@asynccontextmanager
async def mcp_session(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    elicitation: ElicitationFnT | None = None,
    idle_timeout: float = 600,
    max_connections: int = 100,
) -> AsyncIterator[ClientSession]:
    """`idle_timeout` is the longest silence the client accepts on a response stream; every
    call in flight holds one of `max_connections` (its response is a stream)."""
    timeout = httpx2.Timeout(30, read=idle_timeout)
    limits = httpx2.Limits(max_connections=max_connections)
    async with (
        httpx2.AsyncClient(headers=headers or {}, timeout=timeout, limits=limits) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, elicitation_callback=elicitation) as session,
    ):
        await session.initialize()
        yield session


def data(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful call (fails the test on a tool error)."""
    assert not result.is_error, f"tool error: {error_text(result)}"
    structured: dict[str, Any] | None = result.structured_content
    assert structured is not None
    return structured


def error_text(result: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)
