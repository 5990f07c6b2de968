"""The gateway's task as the spec's `Task`, in the field names of each protocol era.

2026-07-28 (the extension's schema): `ttlMs`, `pollIntervalMs`, and `tasks/get` inlines
what the status carries (`inputRequests`, `result`, `error`). 2025-11-25: `ttl`,
`pollInterval`, and the result comes from `tasks/result` instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, cast

from mcp_types import INTERNAL_ERROR, CallToolResult, RequestParamsMeta

from ...tasks.listing import TaskSummary
from ...tasks.views import TaskView
from ..elicitation import form_request

EXTENSION = "io.modelcontextprotocol/tasks"
RELATED_TASK = "io.modelcontextprotocol/related-task"
LEGACY_ERA = "2025-11-25"  # the one handshake version with (experimental) tasks
POLL_INTERVAL_MS = 2000  # a coding task takes minutes: polling faster buys nothing
TOOL = "run_coding_task"  # the tool that can become a task

SpecStatus = Literal["working", "input_required", "completed", "failed", "cancelled"]
STATUS: dict[str, SpecStatus] = {
    "running": "working",
    "waiting_for_input": "input_required",
    "completed": "completed",
    "failed": "failed",
    "aborted": "cancelled",
}
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_message(view: TaskView) -> str:
    if view.status == "waiting_for_input":
        asks = "; ".join(p.description for p in view.pending) or "a permission or a question"
        return f"OpenCode waits for an answer: {asks}"[:500]
    if view.status in ("failed", "aborted"):
        return view.error or f"The task {view.status}."
    if view.status == "completed":
        changed = len(view.files_changed)
        return f"Completed; {changed} file(s) changed." if changed else "Completed."
    if view.retry is not None and view.retry.message:
        return f"OpenCode retries the model provider: {view.retry.message}"[:500]
    return "OpenCode is working on it."


def task(view: TaskView, *, modern: bool) -> dict[str, Any]:
    """The `Task` fields of a task view. A task lives as long as OpenCode keeps its session:
    no expiry (ttl null)."""
    status = STATUS[view.status]
    now = _now()
    return {
        "taskId": view.task_id,
        "status": status,
        "statusMessage": status_message(view),
        "createdAt": view.created_at or now,
        # OpenCode records when a turn ended; a running task changes all the time
        "lastUpdatedAt": (view.completed_at if status in TERMINAL else None) or now,
        "ttlMs" if modern else "ttl": None,
        "pollIntervalMs" if modern else "pollInterval": POLL_INTERVAL_MS,
    }


def detailed(view: TaskView, result: CallToolResult) -> dict[str, Any]:
    """2026-07-28 `tasks/get`: the `Task` with what its status carries. `result` is the
    tool result a blocking call returns for this view."""
    fields = task(view, modern=True)
    status = fields["status"]
    if status == "input_required":
        fields["inputRequests"] = {
            # OpenCode's request ids never repeat: each key stays unique over the task's life
            p.id: form_request(p).model_dump(by_alias=True, mode="json", exclude_none=True)
            for p in view.pending
        }
    elif status == "completed":
        fields["result"] = wire(result)
    elif status == "failed":
        # The tool result (status failed, the error, what was changed) rides along as data.
        fields["error"] = {"code": INTERNAL_ERROR, "message": fields["statusMessage"], "data": wire(result)}
    return fields


def summary(entry: TaskSummary) -> dict[str, Any]:
    """A `tasks/list` entry (2025-11-25)."""
    status = STATUS[entry.status]
    now = _now()
    return {
        "taskId": entry.task_id,
        "status": status,
        "createdAt": entry.created_at or now,
        "lastUpdatedAt": entry.updated_at or now,
        "ttl": None,
        "pollInterval": POLL_INTERVAL_MS,
    }


def wire(result: CallToolResult) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def related(task_id: str) -> RequestParamsMeta:
    """The `_meta` entry tying a message to its task (2025-11-25)."""
    return cast(RequestParamsMeta, {RELATED_TASK: {"taskId": task_id}})  # an open map: any key
