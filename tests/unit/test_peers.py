"""The session router's relay to the peer holding a session (peers.py), against a peer on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx2
import pytest
from starlette.types import Receive, Scope, Send

from opencode_mcp_gateway.edge.relay import NOT_FOUND_HEADER, SessionRouter
from tests.support.procs import free_port

pytestmark = pytest.mark.anyio

PEER_KEEP_ALIVE = 0.6


class KeepAlivePeer:
    """An HTTP/1.1 peer that closes a keep-alive connection idle for `keep_alive` seconds. A
    request that arrives on it after that is dropped unanswered: what uvicorn does when its
    keep-alive timer fires in the same loop turn as the request arrives (a loop that lags
    makes that likely), here made certain."""

    def __init__(self, keep_alive: float) -> None:
        self.keep_alive = keep_alive
        self.answered = 0
        self.dropped = 0
        self.port = free_port()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        idle_since = time.monotonic()
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                if time.monotonic() - idle_since >= self.keep_alive:
                    self.dropped += 1
                    return
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                body = b'{"jsonrpc":"2.0","id":1,"result":{}}'
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
                writer.write(b"content-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                self.answered += 1
                idle_since = time.monotonic()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def peer() -> AsyncIterator[KeepAlivePeer]:
    peer = KeepAlivePeer(PEER_KEEP_ALIVE)
    server = await asyncio.start_server(peer.serve, "127.0.0.1", peer.port)
    async with server:
        yield peer


async def _nobody(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("a peer's session must not reach this replica's MCP server")


async def _call(router: SessionRouter, session: str) -> httpx2.Response:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=router), base_url="http://localhost") as client:
        headers = {"mcp-session-id": session, "content-type": "application/json"}
        return await client.post("/mcp", headers=headers, content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}')


async def test_a_relay_never_reuses_a_connection_the_peer_may_be_closing(peer: KeepAlivePeer) -> None:
    router = SessionRouter(
        _nobody,
        gateway_id="g0",
        peers={"g1": f"http://127.0.0.1:{peer.port}"},
        peer_keep_alive=PEER_KEEP_ALIVE,
    )
    try:
        assert (await _call(router, "g1.abc")).status_code == 200
        await asyncio.sleep(PEER_KEEP_ALIVE + 0.2)  # the pooled connection is now one the peer closes
        second = await _call(router, "g1.abc")
        assert second.status_code == 200, second.headers.get(NOT_FOUND_HEADER.decode())
        assert (peer.answered, peer.dropped) == (2, 0)
    finally:
        await router.aclose()


async def test_every_404_says_which_replica_answered_it_and_why() -> None:
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    router = SessionRouter(_nobody, gateway_id="g0", peers={"g0": "http://unused", "g1": gone})
    try:
        unreachable = await _call(router, "g1.abc")
        assert unreachable.status_code == 404 and unreachable.json()["error"]["message"] == "Session not found"
        assert unreachable.headers[NOT_FOUND_HEADER.decode()].startswith(
            "g0: peer g1 holding the session did not answer"
        )
        unknown = await _call(router, "g7.abc")
        assert unknown.headers[NOT_FOUND_HEADER.decode()] == "g0: the session id names no configured replica ('g7')"
    finally:
        await router.aclose()
