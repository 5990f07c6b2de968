"""A raw JSON-RPC MCP client over HTTP (httpx2), for what the SDK's client does not speak:
the tasks extension of 2026-07-28 and the experimental tasks of 2025-11-25.

`RawMCP.modern(...)`: every request carries its own `_meta` envelope (protocol version,
client capabilities, with or without the tasks extension) and the routing headers.
`RawMCP.legacy(...)`: `initialize` at 2025-11-25, then requests on the session.
A response may be JSON or an SSE stream; on a stream, server-to-client requests
(`elicitation/create`) are answered with `on_request` while the stream stays open.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2

EXTENSION = "io.modelcontextprotocol/tasks"
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
ServerRequestHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code: int = error.get("code", 0)
        self.message: str = error.get("message", "")
        self.data: Any = error.get("data")


@dataclass
class RawMCP:
    http: httpx2.AsyncClient
    url: str
    era: str
    extension: bool = True  # 2026-07-28: declare the tasks extension on every request
    capabilities: dict[str, Any] = field(default_factory=dict)
    on_request: ServerRequestHandler | None = None
    session_id: str | None = None
    notifications: list[dict[str, Any]] = field(default_factory=list)
    server_requests: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        era: str,
        *,
        token: str | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> AsyncIterator[RawMCP]:
        """`transport`: an in-process app (httpx2.ASGITransport) instead of the network."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        timeout = httpx2.Timeout(30, read=300)
        async with httpx2.AsyncClient(headers=headers, timeout=timeout, transport=transport) as http:
            client = cls(http, url, era, **options)
            if era == LEGACY:
                await client._initialize()
            yield client

    async def _initialize(self) -> None:
        params = {
            "protocolVersion": LEGACY,
            "capabilities": self.capabilities,
            "clientInfo": {"name": "raw", "version": "1"},
        }
        self.init_result = await self.request("initialize", params)
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _headers(self, method: str, params: dict[str, Any]) -> dict[str, str]:
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        if self.era == MODERN:
            headers |= {"mcp-protocol-version": MODERN, "mcp-method": method}
            name = params.get("name") if method == "tools/call" else params.get("taskId")
            if isinstance(name, str):
                headers["mcp-name"] = name
        elif self.session_id:
            headers["mcp-protocol-version"] = LEGACY
        return headers

    def _envelope(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.era != MODERN:
            return params
        caps = dict(self.capabilities)
        if self.extension:
            caps["extensions"] = {**caps.get("extensions", {}), EXTENSION: {}}
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": caps,
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            **params.get("_meta", {}),
        }
        return {**params, "_meta": meta}

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The result; a JSON-RPC error raises RpcError."""
        message = await self.exchange(method, params)
        if "error" in message:
            raise RpcError(message["error"])
        result: dict[str, Any] = message["result"]
        return result

    async def exchange(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole JSON-RPC response message for one request."""
        params = params or {}
        rid = next(self._ids)
        body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": self._envelope(params)}
        async with self.http.stream("POST", self.url, json=body, headers=self._headers(method, params)) as response:
            if method == "initialize":
                self.session_id = response.headers.get("mcp-session-id")
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                async for message in _sse_messages(response):
                    if message.get("id") == rid and "method" not in message:
                        return message
                    await self._on_message(message)
                raise AssertionError(f"the stream for {method} ended without a response")
            await response.aread()
            if response.status_code >= 400 and not response.content.startswith(b"{"):
                raise AssertionError(f"{method}: HTTP {response.status_code} {response.text}")
            found: dict[str, Any] = json.loads(response.content)
            return found

    async def first_message(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The first message of a request's stream (e.g. the acknowledgement of
        `subscriptions/listen`, a stream that never ends by itself); then the stream is closed."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": self._envelope(params)}
        async with self.http.stream("POST", self.url, json=body, headers=self._headers(method, params)) as response:
            async for message in _sse_messages(response):
                return message
        raise AssertionError(f"the stream for {method} ended without a message")

    async def _on_message(self, message: dict[str, Any]) -> None:
        if "id" in message and "method" in message:  # a request from the server
            self.server_requests.append(message)
            if self.on_request is None:
                reply = {"error": {"code": -32601, "message": "not supported"}}
            else:
                reply = {"result": await self.on_request(message)}
            await self._post({"jsonrpc": "2.0", "id": message["id"], **reply})
        elif "method" in message:
            self.notifications.append(message)

    async def _post(self, body: dict[str, Any]) -> None:
        headers = self._headers(str(body.get("method", "")), {})
        response = await self.http.post(self.url, json=body, headers=headers)
        assert response.status_code < 300, response.text

    async def call(self, tool: str, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return await self.request("tools/call", {"name": tool, "arguments": arguments, **extra})


async def _sse_messages(response: httpx2.Response) -> AsyncIterator[dict[str, Any]]:
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            text = "\n".join(data)
            data = []
            if text.strip():
                yield json.loads(text)
