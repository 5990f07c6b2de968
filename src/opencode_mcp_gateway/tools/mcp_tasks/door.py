"""What every `tasks/*` request shares: the caller it acts for, the task layer's refusals
as the spec's errors, and the tool result a blocking call would have returned."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, CallToolResult, RequestParams
from pydantic import Field, ValidationError

from ...fleet import TaskPool, WorkerDown
from ...opencode import OpenCodeError, OpenCodeNotFound
from ...tasks import TaskError, TaskId, parse_task_id
from ...tasks.listing import TaskLister
from ...tasks.ownership import acting_as
from ...tasks.views import TaskView
from ..callers import caller_of_request
from ..guidance import guided

NOT_FOUND = "Failed to retrieve task: Task not found"  # the spec's words, for unknown and foreign ids alike


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId")


class UpdateParams(TaskParams):
    input_responses: dict[str, Any] = Field(alias="inputResponses")


class TaskDoor:
    def __init__(self, service: TaskPool, *, auth_configured: bool) -> None:
        self.service = service
        self.auth_configured = auth_configured
        self.lister = TaskLister(service)
        self.tool: Tool | None = None  # run_coding_task, once registered

    def result_of(self, view: TaskView) -> CallToolResult:
        """The tool result a blocking run_coding_task returns for this view."""
        assert self.tool is not None, "attach() the tasks extension to the server first"
        converted = self.tool.fn_metadata.convert_result(guided(view))
        assert isinstance(converted, CallToolResult)
        return converted

    @contextmanager
    def acting(self, ctx: ServerRequestContext[Any, Any], raw_id: str) -> Iterator[TaskId]:
        """For the request's caller, on task `raw_id`, with refusals as the spec's errors."""
        with self.caller(ctx):
            try:
                yield parse_task_id(raw_id)
            except WorkerDown as exc:  # the task exists; its worker does not answer
                raise MCPError(INTERNAL_ERROR, str(exc)) from None
            except (TaskError, OpenCodeNotFound):
                raise MCPError(INVALID_PARAMS, NOT_FOUND) from None
            except OpenCodeError as exc:
                raise MCPError(INTERNAL_ERROR, f"OpenCode error: {exc}") from None

    @contextmanager
    def caller(self, ctx: ServerRequestContext[Any, Any]) -> Iterator[None]:
        try:
            caller = caller_of_request(ctx.request, auth_configured=self.auth_configured)
        except ToolError as exc:
            raise MCPError(INVALID_REQUEST, str(exc)) from None
        with acting_as(caller):
            yield


def started(result: Any) -> TaskView | None:
    """The task a task-mode run_coding_task started (its result as the SDK's model or as
    the wire dict), or None when the call was refused."""
    if isinstance(result, CallToolResult):
        result = result.model_dump(by_alias=True, mode="json")
    structured = result.get("structuredContent") if isinstance(result, Mapping) else None
    if not isinstance(structured, Mapping) or result.get("isError"):
        return None
    try:
        return TaskView.model_validate(structured)
    except ValidationError:
        return None


def error_text(result: Any) -> str:
    """The text of a refused call's result."""
    if isinstance(result, CallToolResult):
        result = result.model_dump(by_alias=True, mode="json")
    content = result.get("content") if isinstance(result, Mapping) else None
    texts = [c.get("text", "") for c in content or [] if isinstance(c, Mapping)]
    return " ".join(t for t in texts if t) or "run_coding_task refused the call"
