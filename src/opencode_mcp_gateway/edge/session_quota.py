"""One client's share of the MCP sessions, so that another client can always connect.

The SDK caps the sessions of the whole process (MAX_SESSIONS, then 503) and expires idle
ones (SESSION_IDLE_TIMEOUT_SECONDS), but one client opening sessions it never closes could
hold all of them for that long. This ASGI middleware, behind the guard (which says who
calls), lets one client (one identity: the token's, or one address when unauthenticated)
hold at most MAX_SESSIONS_PER_CLIENT open sessions; past that, opening another is 429.

Only requests that can open a session count: a POST without `mcp-session-id` on a
handshake-era protocol (2026-07-28 requests open none). A session is the client's once
the SDK answers with its id, and stops counting once the SDK no longer holds it (closed,
expired or refused).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection

from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth import identity_of_scope
from .guard import _reject


class SessionQuota:
    def __init__(self, app: ASGIApp, *, open_sessions: Callable[[], Collection[str]], per_client: int) -> None:
        """`open_sessions`: the ids of the sessions the SDK holds now."""
        self.app = app
        self.open_sessions = open_sessions
        self.per_client = per_client
        self._held: dict[str, set[str]] = defaultdict(set)
        self._opening: dict[str, int] = defaultdict(int)  # requests in flight that may open one

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _may_open_session(scope):
            await self.app(scope, receive, send)
            return
        identity = identity_of_scope(scope)
        client = identity.name if identity else "unknown"
        self._forget_closed()
        if len(self._held[client]) + self._opening[client] >= self.per_client:
            await _reject(
                send,
                429,
                f"this client already holds {self.per_client} MCP sessions (MAX_SESSIONS_PER_CLIENT): "
                "end some (DELETE with mcp-session-id) or wait until idle ones expire",
            )
            return

        opening = True  # counts against the share until the SDK answers

        async def note_session(message: Message) -> None:
            nonlocal opening
            if message["type"] == "http.response.start":
                session = dict(message.get("headers") or []).get(b"mcp-session-id")
                if session and message["status"] < 400:
                    self._held[client].add(session.decode("latin-1"))
                opening = self._settle(client, opening)
            await send(message)

        self._opening[client] += 1
        try:
            await self.app(scope, receive, note_session)
        finally:
            self._settle(client, opening)

    def _settle(self, client: str, opening: bool) -> bool:
        """The request no longer counts as opening; returns False for the caller's flag."""
        if opening:
            self._opening[client] -= 1
            if not self._opening[client]:
                del self._opening[client]
        return False

    def _forget_closed(self) -> None:
        live = self.open_sessions()
        for client, held in list(self._held.items()):
            still = {session for session in held if session in live}
            if still:
                self._held[client] = still
            else:
                del self._held[client]


def _may_open_session(scope: Scope) -> bool:
    if scope["method"] != "POST":
        return False
    headers = dict(scope["headers"])
    if b"mcp-session-id" in headers:
        return False
    version = headers.get(b"mcp-protocol-version")
    return version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS
