"""The tools that start a task: run_coding_task (blocking, with progress, elicitation and
MCP Tasks) and run_coding_task_async. Both take the same arguments and share `submit`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import InputRequiredResult
from pydantic import Field

from ..config import Settings, auth_methods
from ..fleet import TaskPool
from ..observability import logs
from ..opencode import OpenCodeError
from ..tasks import TaskId, TaskRequest, parse_task_id
from ..tasks.attachments import AttachmentInput
from ..tasks.budget import for_call
from ..tasks.views import TaskView
from ..webhooks import check_notify_url
from .arguments import (
    RUNS_AGENT,
    AgentArg,
    AttachmentsArg,
    BranchArg,
    DirectoryArg,
    FollowUpArg,
    IsolateArg,
    MaxCostArg,
    MaxTokensArg,
    ModelArg,
    NotifyUrlArg,
    OutputSchemaArg,
    Prompt,
    PushArg,
    ReadOnlyArg,
    RefArg,
    RepositoryArg,
    TitleArg,
)
from .callers import for_caller
from .elicitation import apply_answers, can_elicit, input_required, is_modern, make_asker
from .guidance import guided
from .handling import tool_errors
from .mcp_tasks import backgrounded

log = logging.getLogger(__name__)


# The parameters both run tools take and hand on to `submit` (each tool also has `ctx`, and
# run_coding_task its `timeout_seconds`): named once, so a new one cannot reach one tool only.
SUBMITTED = (
    "prompt",
    "agent",
    "model",
    "directory",
    "title",
    "task_id",
    "max_tokens",
    "max_cost_usd",
    "repository",
    "ref",
    "branch",
    "push",
    "isolate",
    "notify_url",
    "read_only",
    "output_schema",
    "attachments",
)


def submitted(arguments: dict[str, Any]) -> dict[str, Any]:
    """A run tool's own arguments (its `locals()`) as `submit` takes them."""
    return {name: arguments[name] for name in SUBMITTED}


def add_run_tools(mcp: MCPServer, service: TaskPool, settings: Settings) -> None:
    as_caller = for_caller(auth_configured=bool(auth_methods(settings)))  # tasks belong to their caller

    def progress_reporter(ctx: Context) -> Callable[[str], Awaitable[None]]:
        step = 0

        async def report(message: str) -> None:
            nonlocal step
            step += 1
            try:
                await ctx.report_progress(step, None, message)
            except Exception as exc:  # a gone client must not end the task
                log.debug("progress not delivered: %s", exc)

        return report

    async def submit(
        *,
        prompt: str,
        agent: str | None,
        model: str | None,
        directory: str | None,
        title: str | None,
        task_id: str | None,
        max_tokens: int | None,
        max_cost_usd: float | None,
        repository: str | None,
        ref: str | None,
        branch: str | None,
        push: bool,
        isolate: bool,
        notify_url: str | None,
        report: Callable[[str], Awaitable[None]] | None,
        read_only: bool,
        output_schema: dict[str, Any] | None,
        attachments: list[AttachmentInput] | None,
    ) -> TaskId:
        """What both run tools do with their (identical) arguments."""
        budget = for_call(settings, max_tokens, max_cost_usd)
        follows = parse_task_id(task_id) if task_id else None
        notify = check_notify_url(notify_url, settings.webhook_allow_list) if notify_url else None
        request = TaskRequest(
            prompt,
            agent,
            model,
            directory,
            title,
            follows,
            budget,
            repository,
            ref,
            branch,
            push,
            isolate,
            notify_url=notify,
            read_only=read_only,
            output_schema=output_schema,
            attachments=tuple(attachments or ()),
        )
        tid = await service.submit(request, report)  # when every worker is full, the wait for a slot is told
        logs.task_id.set(str(tid))  # the rest of the call's log records name the new task
        return tid

    @mcp.tool(annotations=RUNS_AGENT)
    @tool_errors
    @as_caller
    async def run_coding_task(
        prompt: Prompt,
        ctx: Context,
        agent: AgentArg = None,
        model: ModelArg = None,
        directory: DirectoryArg = None,
        title: TitleArg = None,
        timeout_seconds: Annotated[
            float | None,
            Field(gt=0, le=86_400, description="how long to wait before returning status 'running' (default 600)"),
        ] = None,
        task_id: FollowUpArg = None,
        max_tokens: MaxTokensArg = None,
        max_cost_usd: MaxCostArg = None,
        repository: RepositoryArg = None,
        ref: RefArg = None,
        branch: BranchArg = None,
        push: PushArg = False,
        isolate: IsolateArg = False,
        notify_url: NotifyUrlArg = None,
        read_only: ReadOnlyArg = False,
        output_schema: OutputSchemaArg = None,
        attachments: AttachmentsArg = None,
    ) -> TaskView | InputRequiredResult:
        """Run a coding task with OpenCode and wait for it to finish.

        Returns the final answer, status and changed files. Sends progress notifications
        while it works. If it takes longer than timeout_seconds, returns status 'running'
        with a task_id to poll with get_task_status (the task keeps going). Cancelling
        this call aborts the task."""
        report = progress_reporter(ctx)
        if ctx.request_state:  # 2026-07-28: the client calls again with answers to our questions
            tid = await apply_answers(service, ctx)
        else:
            tid = await submit(**submitted(locals()), report=report)
        if backgrounded():  # an MCP task (tools/mcp_tasks): the handle now, the rest through tasks/*
            return guided(await service.view(tid, with_files=False))
        asking = settings.permission_policy == "ask"
        try:
            view = await service.wait(
                tid,
                timeout_seconds or settings.task_timeout_seconds,
                report=report,
                ask=make_asker(ctx) if asking else None,
            )
        except OpenCodeError as exc:
            raise ToolError(
                f"Lost contact with OpenCode while task {tid} ran ({exc}). The task may have finished or "
                f"stopped: call get_task_status(task_id='{tid}') once OpenCode answers again."
            ) from None
        except anyio.get_cancelled_exc_class():
            if service.shutting_down:
                raise  # the gateway stops, the task goes on: readable later by task_id
            with anyio.CancelScope(shield=True), anyio.move_on_after(15):
                log.info("client cancelled run_coding_task; aborting %s", tid)
                await service.abort(tid)
            raise
        if view.status == "waiting_for_input" and asking and is_modern(ctx) and can_elicit(ctx):
            return input_required(view)
        return guided(view)

    @mcp.tool(annotations=RUNS_AGENT)
    @tool_errors
    @as_caller
    async def run_coding_task_async(
        prompt: Prompt,
        ctx: Context,
        agent: AgentArg = None,
        model: ModelArg = None,
        directory: DirectoryArg = None,
        title: TitleArg = None,
        task_id: FollowUpArg = None,
        max_tokens: MaxTokensArg = None,
        max_cost_usd: MaxCostArg = None,
        repository: RepositoryArg = None,
        ref: RefArg = None,
        branch: BranchArg = None,
        push: PushArg = False,
        isolate: IsolateArg = False,
        notify_url: NotifyUrlArg = None,
        read_only: ReadOnlyArg = False,
        output_schema: OutputSchemaArg = None,
        attachments: AttachmentsArg = None,
    ) -> TaskView:
        """Start a coding task with OpenCode and return its task_id at once (status 'running').

        Follow it with get_task_status; read results with get_task_messages and
        get_task_diff; stop it with abort_task. Disconnecting does not stop it."""
        tid = await submit(**submitted(locals()), report=None)
        return guided(await service.view(tid, with_files=False))
