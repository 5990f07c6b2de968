"""The tools that follow a task once started: its status (waiting if asked), messages and
diff, aborting it, answering its requests, and the caller's list of tasks."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from ..config import Settings, auth_methods
from ..fleet import TaskPool
from ..tasks import parse_task_id
from ..tasks.listing import TaskList, TaskLister
from ..tasks.views import AbortView, DiffView, MessagesView, RespondView, TaskView
from .arguments import READ_ONLY, TaskIdArg
from .callers import for_caller
from .guidance import guided
from .handling import tool_errors


def add_following_tools(mcp: MCPServer, service: TaskPool, settings: Settings) -> None:
    as_caller = for_caller(auth_configured=bool(auth_methods(settings)))  # only the caller's own tasks
    lister = TaskLister(service)

    @mcp.tool(annotations=READ_ONLY)
    @tool_errors
    @as_caller
    async def get_task_status(
        task_id: TaskIdArg,
        ctx: Context,
        wait_seconds: Annotated[
            float,
            Field(ge=0, le=300, description="wait up to this long for the task to end or need input (0: no wait)"),
        ] = 0,
    ) -> TaskView:
        """Status of a task: running, completed, failed, aborted or waiting_for_input, with
        the result or error, changed files, pending requests, timestamps and token/cost figures."""
        if wait_seconds > 0:
            return guided(await service.wait(parse_task_id(task_id), wait_seconds))
        return guided(await service.view(parse_task_id(task_id)))

    @mcp.tool(annotations=READ_ONLY)
    @tool_errors
    @as_caller
    async def get_task_messages(
        task_id: TaskIdArg,
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=1000, description="how many messages, newest kept")] = 50,
        offset: Annotated[int, Field(ge=0, description="skip this many of the newest messages (to page back)")] = 0,
    ) -> MessagesView:
        """The task's conversation, oldest first: texts and tool calls with input, output and
        status. Bounded in size; `note` says what was cut and how to read the rest."""
        return await service.messages(parse_task_id(task_id), limit=limit, offset=offset)

    @mcp.tool(annotations=READ_ONLY)
    @tool_errors
    @as_caller
    async def get_task_diff(
        task_id: TaskIdArg,
        ctx: Context,
        path: Annotated[str | None, Field(description="only this file, with its whole patch")] = None,
    ) -> DiffView:
        """Files the task changed: path, status, additions, deletions and a unified patch
        (bounded; `note` says how to get a cut patch whole)."""
        return await service.diff(parse_task_id(task_id), path=path)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True))
    @tool_errors
    @as_caller
    async def abort_task(task_id: TaskIdArg, ctx: Context) -> AbortView:
        """Stop a running task. Aborting a task that already ended is harmless and says so.
        Its messages and changes so far stay readable."""
        return await service.abort(parse_task_id(task_id))

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False))
    @tool_errors
    @as_caller
    async def respond_to_task(
        task_id: TaskIdArg,
        ctx: Context,
        request_id: Annotated[str, Field(description="id of the pending request (from get_task_status.pending)")],
        reply: Annotated[
            Literal["once", "always", "reject"] | None,
            Field(description="for a permission: once, always or reject; 'reject' also refuses a question"),
        ] = None,
        answers: Annotated[
            list[list[str]] | None,
            Field(description='for a question: one list of chosen option labels per question, e.g. [["yes"]]'),
        ] = None,
        message: Annotated[str | None, Field(description="optional note to the agent with a rejection")] = None,
    ) -> RespondView:
        """Answer a permission or question request of a task in status waiting_for_input."""
        return await service.respond(parse_task_id(task_id), request_id, reply, answers, message)

    @mcp.tool(annotations=READ_ONLY)
    @tool_errors
    @as_caller
    async def list_tasks(
        ctx: Context,
        status: Annotated[
            Literal["running", "waiting_for_input", "completed", "failed", "aborted"] | None,
            Field(description="only tasks with this status"),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="how many tasks per page")] = 20,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
    ) -> TaskList:
        """Your tasks, newest first: task_id, title, status, created_at and updated_at (and
        the workspace, for repository tasks). One entry per session: a follow-up shows as
        its session's newest task. Pass next_cursor as cursor for the next page."""
        return await lister.page(status=status, limit=limit, cursor=cursor)
