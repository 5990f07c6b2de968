"""The permission broker: applies PERMISSION_POLICY and the input timeout to the
permission and question requests of the gateway's sessions (the policies are described in
permissions.py).

It follows OpenCode's event stream. Under allow and deny it answers each request of a
session of its policy at once; under every policy it rejects what stays open for
INPUT_TIMEOUT_SECONDS. Whatever OpenCode fails (an answer, the read of the asking session,
the listing after a gap) is tried again a second later.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..observability import metrics
from ..opencode import Event, EventHub, OpenCodeClient, OpenCodeError, OpenCodeNotFound, session_id_of
from ..primitives import LRU
from .permissions import DENY_MESSAGE, describe_request, is_ours, reply

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # between tries of what OpenCode failed


@dataclass
class _OpenRequest:
    kind: str  # permission or question
    session_id: str
    seen: float  # monotonic time it was first seen
    description: str
    tried: float = 0.0  # monotonic time of the last policy answer sent


class PermissionBroker:
    """Applies the policy and the input timeout to the requests of gateway sessions."""

    def __init__(self, client: OpenCodeClient, hub: EventHub, policy: str, input_timeout: float) -> None:
        self._client = client
        self._hub = hub
        self.policy = policy
        self.input_timeout = input_timeout
        self._open: dict[str, _OpenRequest] = {}
        self._ours: LRU[str, bool] = LRU(10_000)
        self._notices: LRU[str, deque[str]] = LRU(5000)
        # Requests whose session OpenCode failed to let us read, by id: (the request, its
        # kind, when first seen). Looked at again every second, given up after INPUT_TIMEOUT_SECONDS.
        self._unread: LRU[str, tuple[dict[str, Any], str, float]] = LRU(1000)
        self._last_retry = 0.0
        self._resync_failed = False  # the listing after a gap failed: list again at the next tick

    def answers_itself(self, session_metadata: dict[str, Any]) -> bool:
        """Whether this gateway (or a replica of its policy) answers the session's requests
        without its caller: a session of our allow or deny policy. Its open requests are
        not the caller's to answer, whatever a read catches between asking and answering."""
        return self.policy != "ask" and is_ours(session_metadata, self.policy)

    # -- notices the task status shows --------------------------------------------------
    def notices(self, session_id: str) -> list[str]:
        return list(self._notices.get(session_id, ()))

    def add_notice(self, session_id: str, text: str) -> None:
        notices = self._notices.get(session_id) or deque(maxlen=20)
        notices.append(text)
        self._notices[session_id] = notices

    # -- the background loop --------------------------------------------------------------
    async def run(self) -> None:
        with self._hub.subscribe(None) as sub:
            while True:
                for event in await sub.next_batch(timeout=1.0):
                    await self._on_event(event)
                await self._tick()

    async def _on_event(self, event: Event) -> None:
        kind = event.get("type")
        props = event.get("properties") or {}
        if kind in ("permission.asked", "question.asked"):
            await self._on_asked(props, "permission" if kind == "permission.asked" else "question")
        elif kind in ("permission.replied", "question.replied", "question.rejected"):
            request_id = str(props.get("requestID") or props.get("id"))
            self._open.pop(request_id, None)
            self._unread.pop(request_id, None)
        elif kind == "gateway.resync":
            await self._reconcile()

    async def _on_asked(self, raw: dict[str, Any], kind: str) -> None:
        request_id, session_id = str(raw.get("id")), session_id_of({"properties": raw}) or ""
        if request_id in self._open:
            return
        ours = await self._is_ours(session_id)
        if ours is None:
            first_seen = self._unread[request_id][2] if request_id in self._unread else time.monotonic()
            self._unread[request_id] = (raw, kind, first_seen)
            return
        self._unread.pop(request_id, None)
        if not ours:
            return
        description = describe_request(raw, kind).description
        self._open[request_id] = _OpenRequest(kind, session_id, time.monotonic(), description)
        await self._apply_policy(request_id)

    async def _apply_policy(self, request_id: str) -> None:
        request = self._open[request_id]
        request.tried = time.monotonic()
        if self.policy == "allow":
            await self._answer(request_id, request.kind, "allowed")
        elif self.policy == "deny" and await self._answer(request_id, request.kind, "denied", message=DENY_MESSAGE):
            self.add_notice(request.session_id, f"{request.description} — denied by policy")

    async def _reconcile(self) -> None:
        """After a gap: pick up requests asked while the stream was down."""
        self._resync_failed = False
        try:
            found = [(r, "permission") for r in await self._client.permissions()]
            found += [(r, "question") for r in await self._client.questions()]
        except OpenCodeError:
            self._resync_failed = True
            return
        live = {str(r.get("id")) for r, _ in found}
        for request_id in list(self._open):
            if request_id not in live:
                self._open.pop(request_id)
        for raw, kind in found:
            await self._on_asked(raw, kind)

    async def _tick(self) -> None:
        """Expire what waited too long. When OpenCode failed a read or an answer, go again
        after a second: the listing after a gap, the requests whose session could not be read
        (they may be in any directory, which a listing would not cover), and under allow or
        deny the answers OpenCode did not take (a request still open here was never answered)."""
        now = time.monotonic()
        if now - self._last_retry >= RETRY_SECONDS and (self._resync_failed or self._unread):
            self._last_retry = now
            if self._resync_failed:
                await self._reconcile()
            for request_id, (raw, kind, seen) in list(self._unread.items()):
                if now - seen >= self.input_timeout:
                    log.warning("gave up on %s %s: its session could not be read", kind, request_id)
                    self._unread.pop(request_id, None)
                else:
                    await self._on_asked(raw, kind)
        for request_id, request in list(self._open.items()):
            if now - request.seen >= self.input_timeout:
                message = (
                    f"No answer within INPUT_TIMEOUT_SECONDS={self.input_timeout:g}s; the gateway rejected it. "
                    "Continue without this action."
                )
                if await self._answer(request_id, request.kind, "expired", message=message):
                    self.add_notice(
                        request.session_id,
                        f"{request.kind} request {request_id} got no answer within {self.input_timeout:g}s "
                        "and was rejected",
                    )
            elif self.policy != "ask" and now - request.tried >= RETRY_SECONDS:
                await self._apply_policy(request_id)

    async def _answer(self, request_id: str, kind: str, outcome: str, *, message: str | None = None) -> bool:
        """Whether the request is settled: answered now (counted as `outcome`: allowed, denied
        or expired), or meanwhile by someone else (a replica, the caller)."""
        try:
            await reply(self._client, request_id, kind, "once" if outcome == "allowed" else "reject", message=message)
            metrics.PERMISSION_REQUESTS.labels(kind, outcome).inc()
        except OpenCodeNotFound:
            pass  # answered meanwhile
        except OpenCodeError as exc:
            log.warning("could not answer %s %s (trying again): %s", kind, request_id, exc)
            return False
        self._open.pop(request_id, None)
        return True

    async def _is_ours(self, session_id: str) -> bool | None:
        """None: OpenCode failed the read, so nobody knows yet."""
        if not session_id:
            return False
        if session_id not in self._ours:
            try:
                session = await self._client.get_session(session_id)
            except OpenCodeNotFound:
                return False
            except OpenCodeError:
                return None
            self._ours[session_id] = is_ours(session.metadata, self.policy)
        return self._ours[session_id]

    def forget(self, request_id: str) -> None:
        self._open.pop(request_id, None)
