"""The events a task's webhook carries, their ids, and their bodies (pure).

Four kinds: `task.completed`, `task.failed`, `task.aborted` when a task ends, and
`task.waiting_for_input` once for each permission or question request it opens. An event's
id (the `webhook-id` header) is derived from the task id, the kind and, for a request, the
request id, so every replica and every restart names one event the same: a receiver can
see a retry of an id, never the same event under a new id.

The body follows the tools' own results, bounded as they are (tasks/bounds.py): the
result text is clipped, the changed files listed up to a limit; a repository task adds
its workspace (branch, head commit, pushed), never the worktree's path on the worker.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..tasks.bounds import FIELD_LIMIT, TEXT_LIMIT, clip
from ..tasks.views import PendingRequest, TaskView

COMPLETED, FAILED, ABORTED, WAITING = "task.completed", "task.failed", "task.aborted", "task.waiting_for_input"
KINDS = (COMPLETED, FAILED, ABORTED, WAITING)
ENDS = {"completed": COMPLETED, "failed": FAILED, "aborted": ABORTED}
MAX_FILES = 100
_WORKSPACE_FIELDS = ("repository", "ref", "base_commit", "branch", "head_commit", "pushed", "push_error")


def event_id(task_id: str, kind: str, request_id: str | None = None) -> str:
    """The event's `webhook-id`: the same for the same (task, kind, request) everywhere."""
    key = "\n".join((task_id, kind, request_id or ""))
    return "evt_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def end_ids(task_id: str) -> list[str]:
    """The ids the task's end can have (one of them is sent): to tell whether it was."""
    return [event_id(task_id, kind) for kind in ENDS.values()]


@dataclass(frozen=True)
class Event:
    id: str
    kind: str
    task_id: str
    body: bytes  # exactly the bytes signed and sent, the same for every attempt


def events_of(view: TaskView, *, now: datetime | None = None) -> list[Event]:
    """What a read of the task has to tell: its end, or each open request."""
    if view.status in ENDS:
        kind = ENDS[view.status]
        when = view.completed_at or _rfc3339(now)
        return [Event(event_id(view.task_id, kind), kind, view.task_id, body(view, kind, when))]
    if view.status == "waiting_for_input":
        return [
            Event(
                event_id(view.task_id, WAITING, request.id),
                WAITING,
                view.task_id,
                body(view, WAITING, _rfc3339(now), request),
            )
            for request in view.pending
        ]
    return []


def body(view: TaskView, kind: str, timestamp: str, request: PendingRequest | None = None) -> bytes:
    result = clip(view.result, TEXT_LIMIT)[0] if view.result else None
    data: dict[str, Any] = {
        "task_id": view.task_id,
        "status": view.status,
        "title": clip(view.title, 200)[0] if view.title else None,
        "result": result,
        "error": clip(view.error, FIELD_LIMIT)[0] if view.error else None,
        "files_changed": [f.model_dump() for f in view.files_changed[:MAX_FILES]],
        "request": request.model_dump(exclude={"how_to_answer"}) if request is not None else None,
    }
    if len(view.files_changed) > MAX_FILES:
        data["files_truncated"] = len(view.files_changed) - MAX_FILES
    if view.workspace is not None:
        data["workspace"] = view.workspace.model_dump(include=set(_WORKSPACE_FIELDS))
    return json.dumps({"type": kind, "timestamp": timestamp, "data": data}, ensure_ascii=False).encode()


def _rfc3339(now: datetime | None) -> str:
    moment = now or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
