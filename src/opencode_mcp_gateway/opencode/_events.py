"""One subscription to OpenCode's `/global/event` stream, fanned out to whoever listens.

Waiters subscribe per session (or to everything) and get batches of events. After any
gap in the stream (OpenCode restarted, network hiccup) every subscriber receives a
synthetic `gateway.resync` event: events may have been missed, so it must re-read the
state over HTTP instead of trusting what it saw.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import anyio
import httpx2

from ..observability import metrics
from ..primitives import Backoff
from ._client import OpenCodeClient
from ._errors import OpenCodeError

log = logging.getLogger(__name__)

Event = dict[str, Any]
RESYNC = "gateway.resync"
DISCONNECTED = "gateway.disconnected"
_IGNORED = frozenset({"sync", "server.heartbeat", "message.part.delta", "plugin.added"})
# OpenCode takes connections a while (0.2 s, seconds on a busy machine) before it answers
# them, and never answers one taken then (opencode-api.md, "Startup race"). A stream that
# gets no answer within this is opened again, so a restarted worker is back in seconds rather
# than after the stream's 15 s of silence; the patience doubles with each unanswered try, so
# an OpenCode that is merely slow is still reached.
ANSWER_SECONDS = 3.0
_MOST_PATIENCE = 15.0


def session_id_of(event: Event) -> str | None:
    props = event.get("properties") or {}
    for holder in (props, props.get("info"), props.get("part")):
        if isinstance(holder, dict) and isinstance(holder.get("sessionID"), str):
            return str(holder["sessionID"])
    return None


class Subscription:
    """A bounded mailbox of events; `overflowed` tells the reader it must re-read state."""

    def __init__(self, session_id: str | None, maxlen: int = 2000) -> None:
        self.session_id = session_id
        self._events: deque[Event] = deque(maxlen=maxlen)
        self._wake = anyio.Event()

    def push(self, event: Event) -> None:
        if len(self._events) == self._events.maxlen:
            self._events.clear()
            self._events.append({"type": RESYNC, "properties": {"reason": "subscriber fell behind"}})
        self._events.append(event)
        self._wake.set()

    async def next_batch(self, timeout: float) -> list[Event]:
        """The events that arrived since the last call; waits up to `timeout` for one."""
        if not self._events:
            with anyio.move_on_after(timeout):
                await self._wake.wait()
        batch = list(self._events)
        self._events.clear()
        self._wake = anyio.Event()
        return batch


class EventHub:
    def __init__(self, client: OpenCodeClient, gate: Callable[[], Awaitable[None]] | None = None) -> None:
        self._client = client
        self._gate = gate  # awaited before each connect: a spawned OpenCode must be listening
        self._by_session: dict[str, set[Subscription]] = {}
        self._everything: set[Subscription] = set()
        self.connected = False
        self.generation = 0  # bumped on every (re)connection
        self._connected_event = anyio.Event()
        self._patience = ANSWER_SECONDS
        metrics.EVENT_STREAM_RECONNECTS.labels(client.worker)  # shows at 0 until the first reconnect

    @contextmanager
    def subscribe(self, session_id: str | None = None) -> Iterator[Subscription]:
        sub = Subscription(session_id)
        group = self._everything if session_id is None else self._by_session.setdefault(session_id, set())
        group.add(sub)
        try:
            yield sub
        finally:
            group.discard(sub)
            if session_id is not None and not group:
                self._by_session.pop(session_id, None)

    async def wait_connected(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            await self._connected_event.wait()
        return self.connected

    def dispatch(self, event: Event) -> None:
        sid = session_id_of(event)
        targets = list(self._everything)
        if event["type"] in (RESYNC, DISCONNECTED):
            targets += [s for group in self._by_session.values() for s in group]
        elif sid is not None:
            targets += self._by_session.get(sid, ())
        for sub in targets:
            sub.push(event)

    async def run(self) -> None:
        """Keep the stream open forever, reconnecting with back-off."""
        backoff = Backoff(0.1, 2.0)
        while True:
            if self._gate is not None:
                await self._gate()
            try:
                async with AsyncExitStack() as stack:
                    response = await self._open(stack)
                    if response is None:
                        continue  # OpenCode is there (it took the connection): ask again at once
                    self._mark_connected()
                    backoff.reset()
                    async for event in _parse_sse(response.aiter_lines()):
                        self.dispatch(event)
            except OpenCodeError as exc:
                log.debug("event stream: %s", exc)
            except Exception:  # a malformed frame must not end tracking for every task
                log.exception("event stream failed; reconnecting")
            if self.connected:
                log.warning("lost OpenCode's event stream; reconnecting (tasks fall back to reading state)")
                self.connected = False
                self._connected_event = anyio.Event()
                self.dispatch({"type": DISCONNECTED, "properties": {}})
            await backoff.sleep()

    async def _open(self, stack: AsyncExitStack) -> httpx2.Response | None:
        """The stream's response; None when OpenCode took the connection but did not answer."""
        with anyio.move_on_after(self._patience):
            response = await stack.enter_async_context(self._client.stream("/global/event"))
            self._patience = ANSWER_SECONDS
            return response
        log.info("OpenCode did not answer its event stream within %.0fs; asking again", self._patience)
        self._patience = min(self._patience * 2, _MOST_PATIENCE)
        return None

    def _mark_connected(self) -> None:
        self.connected = True
        self.generation += 1
        self._connected_event.set()
        if self.generation > 1:
            log.info("event stream reconnected")
            metrics.EVENT_STREAM_RECONNECTS.labels(self._client.worker).inc()
        self.dispatch({"type": RESYNC, "properties": {"generation": self.generation}})


async def _parse_sse(lines: Any) -> Any:
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "" and data:
            raw = "\n".join(data)
            data = []
            if _frame_type(raw) in _IGNORED:
                continue  # most frames (sync copies, deltas): not worth a JSON parse
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            payload = frame.get("payload", frame) if isinstance(frame, dict) else None
            if isinstance(payload, dict) and isinstance(payload.get("type"), str):
                if payload["type"] in _IGNORED:
                    continue
                if frame.get("directory"):
                    payload["directory"] = frame["directory"]
                yield payload


def _frame_type(raw: str) -> str | None:
    """The event type, read without parsing: the first "type" key is the payload's own
    (what precedes it, directory and project, are plain strings)."""
    at = raw.find('"type":"')
    if at < 0:
        return None
    end = raw.find('"', at + 8)
    return raw[at + 8 : end] if end > 0 else None
