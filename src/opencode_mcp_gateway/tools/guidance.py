"""What a caller can do next with a task: text that names this server's tools, so it is
written here, at the MCP surface, not by the task layer."""

from __future__ import annotations

from ..tasks.views import TaskView
from ..workspaces.push_retries import SCHEDULE

RETRY_MINUTES = round(sum(SCHEDULE) / 60)  # how long the gateway keeps trying a failed push


def guided(view: TaskView) -> TaskView:
    """The view with `next_step` filled in for its status."""
    workspace = view.workspace
    if view.status == "completed" and workspace is not None and workspace.push_error:
        view.next_step = (
            f"Done, but pushing branch {workspace.branch} failed (workspace.push_error). The work is committed "
            f"on the branch, and the gateway tries the push again by itself for about {RETRY_MINUTES} minutes: "
            f"call get_task_status(task_id={view.task_id!r}) later to see workspace.pushed. A follow-up turn "
            "(run_coding_task with this task_id) that commits pushes at once."
        )
    else:
        view.next_step = next_step(view.task_id, view.status)
    return view


def next_step(task_id: str, status: str) -> str | None:
    if status == "running":
        return f"Still running. Call get_task_status(task_id={task_id!r}) later, or abort_task to stop it."
    if status == "waiting_for_input":
        return "OpenCode waits for an answer: call respond_to_task with the request id from pending."
    if status == "completed":
        return "Done. get_task_diff shows the changes; run_coding_task with this task_id continues the session."
    if status == "failed":
        return "See error. run_coding_task with this task_id continues the same session with a new instruction."
    return None
