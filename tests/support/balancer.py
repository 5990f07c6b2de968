"""A plain round-robin HTTP balancer for the scale-out tests: every request (not every
connection) goes to the next backend, with no affinity of any kind (no cookies, no
header pinning), as an OpenShift Route with `balance: roundrobin` and cookies disabled.
Responses are streamed through unbuffered, so SSE progress arrives as it is sent.

Like HAProxy (`retries`, `option redispatch`) it tries the next backend when a connection
cannot be made (refused or timed out: the request was never sent). It keeps connections to
the backends alive, for less than the gateway's own keep-alive (edge/relay.py explains why)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections import Counter
from typing import NamedTuple

import httpx2
import uvicorn
from starlette.types import Receive, Scope, Send

from opencode_mcp_gateway.edge.relay import KEEP_ALIVE_SECONDS
from tests.support.procs import free_port

_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"host", b"content-length"}


class Routed(NamedTuple):
    """One request as the balancer routed it."""

    backend: str
    http_method: str
    rpc: str  # the JSON-RPC method, "response" for a client's answer, "" without a body
    session_id: str | None
    has_request_state: bool


class RoundRobin:
    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self._next = itertools.cycle(range(len(backends)))
        self.hits: Counter[str] = Counter()
        self.routed: list[Routed] = []
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._http: httpx2.AsyncClient | None = None  # made in the balancer's own event loop

    def _client(self) -> httpx2.AsyncClient:
        if self._http is None:
            self._http = httpx2.AsyncClient(
                timeout=httpx2.Timeout(10, read=None, pool=None),
                limits=httpx2.Limits(max_connections=None, keepalive_expiry=KEEP_ALIVE_SECONDS / 2),
            )
        return self._http

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP]
        headers.append((b"host", f"127.0.0.1:{self.port}".encode()))
        query = scope["query_string"].decode()
        http = self._client()
        # A backend that cannot be connected to is skipped, as a balancer with health checks does.
        for _ in self.backends:
            backend = self.backends[next(self._next)]
            url = backend + scope["path"] + (f"?{query}" if query else "")
            request = http.build_request(scope["method"], url, headers=headers, content=body)
            try:
                response = await http.send(request, stream=True)
            except (httpx2.ConnectError, httpx2.ConnectTimeout):
                continue
            self.hits[backend] += 1
            self.routed.append(_routed(backend, scope, body))
            break
        else:
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b"no backend answers"})
            return
        relayed = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP]
        await send({"type": "http.response.start", "status": response.status_code, "headers": relayed})

        async def relay() -> None:
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        relaying = asyncio.ensure_future(relay())
        disconnected = asyncio.ensure_future(_disconnect(receive))
        # A client that closes its stream makes us close ours at once, as a proxy does.
        await asyncio.wait({relaying, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        for task in (relaying, disconnected):
            task.cancel()
        await asyncio.gather(relaying, disconnected, return_exceptions=True)
        await response.aclose()
        await send({"type": "http.response.body", "body": b""})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        if self._http is not None:
            await self._http.aclose()
        await send({"type": "lifespan.shutdown.complete"})

    def start(self) -> RoundRobin:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        while not self._server.started:
            threading.Event().wait(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


def _routed(backend: str, scope: Scope, body: bytes) -> Routed:
    session = next((v.decode() for k, v in scope["headers"] if k.lower() == b"mcp-session-id"), None)
    try:
        rpc = json.loads(body) if body else {}
    except ValueError:
        rpc = {}
    kind = rpc.get("method") or ("response" if "result" in rpc or "error" in rpc else "")
    state = bool((rpc.get("params") or {}).get("requestState"))
    return Routed(backend, scope["method"], kind, session, state)


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
