"""Any replica answers for any 2025-era MCP session: session ids name their replica.

Protocol 2025-11-25 keeps a session (`Mcp-Session-Id`) in the memory of the process that
answered `initialize`; the SDK answers 404 anywhere else. Behind a round-robin balancer
(an OpenShift Route cannot stick on a header, and a pin does not outlive its pod) the
follow-up POSTs of a session — tool calls, `notifications/cancelled`, elicitation answers,
the GET stream, DELETE — land on any replica. So:

* A session id leaves this replica as `<GATEWAY_ID>.<sdk id>`.
* A request whose session id names this replica reaches the SDK with the bare id.
* One that names a peer from GATEWAY_PEERS is forwarded to that peer as it is, and the
  peer's (possibly streamed) answer is relayed back unchanged. Only configured peers are
  ever contacted, never an address taken from a request.
* A peer that is gone, or a name nobody knows, answers 404 "Session not found", which
  tells a client to initialize again (its tasks live in OpenCode and stay readable). Every
  such 404 says who answered it and why, in a log line and in `X-Ocgw-Not-Found`.
* Relayed requests reuse pooled connections only while the peer surely keeps them open:
  a peer's uvicorn closes a connection idle for KEEP_ALIVE_SECONDS, and a request sent on
  it at that moment is dropped unanswered, which used to reach the client as a 404 for a
  session that was alive (2 of 200 calls under load, docs/benchmarks.md).

Protocol 2026-07-28 has no sessions; its requests pass straight through.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio
import httpx2
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import PEER_SEPARATOR

log = logging.getLogger(__name__)

SESSION_HEADER = b"mcp-session-id"
FORWARDED_HEADER = b"x-ocgw-forwarded-by"
# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's.
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
SEPARATOR = PEER_SEPARATOR
NOT_FOUND_HEADER = b"x-ocgw-not-found"  # why a 404 "Session not found" was answered, and by whom
# The gateway's HTTP keep-alive (uvicorn's `timeout_keep_alive`, set from here in cli.py). The
# relay keeps a pooled connection half as long: dropped by us well before the peer may close it.
KEEP_ALIVE_SECONDS = 5


class SessionRouter:
    def __init__(
        self,
        app: ASGIApp,
        *,
        gateway_id: str,
        peers: Mapping[str, str],
        transport: httpx2.AsyncBaseTransport | None = None,
        peer_keep_alive: float = KEEP_ALIVE_SECONDS,
    ) -> None:
        self.app = app
        self.gateway_id = gateway_id
        self.peers = {name: url.rstrip("/") for name, url in peers.items() if name != gateway_id}
        # Relayed responses are SSE streams that stay quiet between progress notifications:
        # no read timeout, the client's own idle timeout governs.
        self._http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(10.0, read=None),
            limits=httpx2.Limits(
                max_connections=500, max_keepalive_connections=50, keepalive_expiry=peer_keep_alive / 2
            ),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, SESSION_HEADER)
        if given is None:
            await self.app(_scoped(scope, None), receive, self._stamping(send))
            return
        owner, _, bare = given.partition(SEPARATOR)
        if owner == self.gateway_id and bare:
            await self.app(_scoped(scope, bare), receive, self._stamping(send, bare))
        elif owner in self.peers and bare and _header(scope, FORWARDED_HEADER) is None:
            await self._forward(owner, scope, receive, send)
        elif owner in self.peers and bare:
            await self._not_found(send, f"a relayed request names peer {owner}, not this replica (no second relay)")
        else:
            await self._not_found(send, f"the session id names no configured replica ({owner[:64]!r})")

    def _stamping(self, send: Send, session: str | None = None) -> Send:
        """Session ids this replica hands out carry its name; the SDK's own 404 for a
        `session` it does not hold is logged, so that every 404 says where it came from."""

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                if session is not None and message["status"] == 404:
                    log.warning(
                        "session %s.%s: this replica's MCP server does not hold it (closed, expired or "
                        "ended): answering 404",
                        self.gateway_id,
                        session[:64],
                    )
                headers = []
                for key, value in message.get("headers", []):
                    if key.lower() == SESSION_HEADER:
                        value = f"{self.gateway_id}{SEPARATOR}".encode() + value
                    headers.append((key, value))
                if session is not None and message["status"] == 404:
                    headers.append((NOT_FOUND_HEADER, f"{self.gateway_id}: sdk".encode()))
                message = {**message, "headers": headers}
            await send(message)

        return stamped

    async def _forward(self, owner: str, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP and k.lower() != b"host"]
        headers.append((FORWARDED_HEADER, self.gateway_id.encode()))
        host = _header(scope, b"host")
        if host:  # the peer checks the Host the client used, under the same ALLOWED_HOSTS
            headers.append((b"host", host.encode("latin-1")))
        query = scope.get("query_string", b"").decode("latin-1")
        url = self.peers[owner] + scope.get("root_path", "") + scope["path"] + (f"?{query}" if query else "")
        request = self._http.build_request(scope["method"], url, headers=headers, content=bytes(body))
        try:
            response = await self._http.send(request, stream=True)
        except httpx2.HTTPError as exc:
            await self._not_found(
                send, f"peer {owner} holding the session did not answer ({type(exc).__name__}: {exc})"
            )
            return
        try:
            relayed = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": relayed})
            async with anyio.create_task_group() as tg:
                # A GET stream never ends by itself: stop relaying once the client is gone.
                tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                tg.cancel_scope.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx2.HTTPError as exc:
            # The peer died mid-stream: end the client's stream; it can read its task by id.
            log.warning("stream relayed from peer %s broke (%s)", owner, type(exc).__name__)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    async def _not_found(self, send: Send, why: str) -> None:
        log.warning("answering 404 Session not found: %s", why)
        body = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}'
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (NOT_FOUND_HEADER, " ".join(f"{self.gateway_id}: {why}".split())[:300].encode("ascii", "replace")),
        ]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _scoped(scope: Scope, session_id: str | None) -> Scope:
    """The scope with the session header replaced by the SDK's own id (or left out)."""
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != SESSION_HEADER]
    if session_id is not None:
        headers.append((SESSION_HEADER, session_id.encode("latin-1")))
    return {**scope, "headers": headers}
