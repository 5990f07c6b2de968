"""Session errors that come without an assistant message (e.g. a provider refusing the
request before the model answers): OpenCode says them once, on the event stream, so the
gateway keeps the latest per session to explain a task that ended with no answer."""

from __future__ import annotations

import time
from typing import Any

from ..opencode import EventHub
from ..primitives import LRU


class SessionErrorLog:
    def __init__(self, hub: EventHub, size: int = 5000) -> None:
        self._hub = hub
        self._latest: LRU[str, dict[str, Any]] = LRU(size)

    async def run(self) -> None:
        with self._hub.subscribe(None) as sub:
            while True:
                for event in await sub.next_batch(timeout=60):
                    if event.get("type") == "session.error":
                        props = event.get("properties") or {}
                        sid = props.get("sessionID")
                        if sid and isinstance(props.get("error"), dict):
                            self._latest[sid] = {"at": int(time.time() * 1000), **props["error"]}

    def since(self, session_id: str, created_ms: int) -> dict[str, Any] | None:
        """The session's latest error, if it came after the turn started at `created_ms`."""
        error = self._latest.get(session_id)
        return error if error and error["at"] >= created_ms else None
