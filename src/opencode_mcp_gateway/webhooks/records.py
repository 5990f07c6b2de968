"""What a session's `notify` record says, and writing down what was delivered.

The record lives in OpenCode's session metadata, beside `owner`, `budget` and `workspace`,
so every replica and every restart reads the same one (docs/design.md, "Completion
webhooks"):

    "notify": {"url": <the caller's notify_url or absent>,
               "task": <the newest task's user message id>,
               "owed": [<user message ids of the tasks whose end is not settled yet>],
               "deployment": true when WEBHOOK_URL was set at submission,
               "sent": {<event id>: {<destination>: "delivered" | "failed"}}}

The task layer writes `url`, `task`, `owed` and `deployment` when a task is submitted
(tasks/submitter.py); this module adds to `sent` once a delivery is settled (delivered, or
given up after WEBHOOK_RETRY_SECONDS), keeping the newest MAX_SENT events, and takes a task
off `owed` once its end is settled for every destination. A restart, or the replica that
takes over, sends whatever an ended task has no mark for, under the same event id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..opencode import OpenCodeClient, OpenCodeError, Session

log = logging.getLogger(__name__)

KEY = "notify"
MAX_SENT = 64


@dataclass(frozen=True)
class Target:
    """Where a session's task events go, and which were settled."""

    url: str | None = None
    task: str | None = None
    owed: tuple[str, ...] = ()
    deployment: bool = False  # the deployment-wide endpoint is owed this session's events
    sent: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, session: Session) -> Target | None:
        raw = session.metadata.get(KEY)
        if not isinstance(raw, dict):
            return None
        url, task, owed, sent = raw.get("url"), raw.get("task"), raw.get("owed"), raw.get("sent")
        return cls(
            url if isinstance(url, str) and url else None,
            task if isinstance(task, str) and task else None,
            tuple(t for t in owed if isinstance(t, str) and t) if isinstance(owed, list) else (),
            raw.get("deployment") is True,
            {k: v for k, v in sent.items() if isinstance(v, dict)} if isinstance(sent, dict) else {},
        )

    def settled(self, event_id: str, destination: str) -> bool:
        return destination in self.sent.get(event_id, {})

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks owed their end (a record from before `owed`: its newest)."""
        return self.owed or ((self.task,) if self.task else ())


class Records:
    """Marks settled deliveries in one OpenCode's session metadata."""

    def __init__(self, client: OpenCodeClient) -> None:
        self._client = client
        self._locks: dict[str, anyio.Lock] = {}

    async def mark(
        self,
        session_id: str,
        event_id: str,
        destination: str,
        result: str,
        *,
        ends: str | None = None,
        destinations: tuple[str, ...] = (),
    ) -> None:
        """PATCH replaces the whole metadata: read it afresh, change only `notify`, and never
        run two marks of one session at once (they would undo each other). `ends`: the task
        (user message id) this event is the end of, owed no more once every one of
        `destinations` has it settled."""
        lock = self._locks.setdefault(session_id, anyio.Lock())
        try:
            async with lock:
                session = await self._client.get_session(session_id)
                metadata: dict[str, Any] = dict(session.metadata)
                notify = dict(metadata.get(KEY) or {})
                sent = dict(notify.get("sent") or {})
                entry = dict(sent.pop(event_id, None) or {})
                entry[destination] = result
                sent[event_id] = entry
                notify["sent"] = dict(list(sent.items())[-MAX_SENT:])
                if ends is not None and set(destinations) <= set(entry):
                    notify["owed"] = [t for t in notify.get("owed") or [] if t != ends]
                metadata[KEY] = notify
                await self._client.update_session_metadata(session_id, metadata)
        except OpenCodeError as exc:  # the delivery stands; at worst it is sent again, same id
            log.warning("webhook %s: could not record its delivery in session %s: %s", event_id, session_id, exc)
        finally:
            if not lock.statistics().tasks_waiting:
                self._locks.pop(session_id, None)
