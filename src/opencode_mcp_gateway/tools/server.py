"""The MCP tools: schemas, annotations and thin handlers over the task service."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import InputRequiredResult, ToolAnnotations
from pydantic import Field

from .. import __version__
from ..config import Settings, auth_methods
from ..fleet import TaskPool
from ..observability import logs
from ..opencode import OpenCodeError
from ..tasks import TaskId, TaskRequest, parse_task_id
from ..tasks.attachments import AttachmentInput
from ..tasks.budget import for_call
from ..tasks.listing import TaskList, TaskLister
from ..tasks.views import AbortView, DiffView, MessagesView, RespondView, TaskView
from ..webhooks import check_notify_url
from .arguments import (
    READ_ONLY,
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
    TaskIdArg,
    TitleArg,
)
from .as_given import keep_text_as_given
from .callers import for_caller, is_admin
from .elicitation import apply_answers, can_elicit, input_required, is_modern, make_asker
from .guidance import guided
from .handling import request_state_security, tool_errors
from .mcp_tasks import TasksExtension, backgrounded
from .observe import ToolCalls
from .tool_list import ToolListCache
from .views import Agent, AgentsView, HealthView

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

INSTRUCTIONS = """\
Hands coding work to OpenCode, an autonomous coding agent working in a repository.
run_coding_task submits a task and waits for it (sending progress); if it runs past
timeout_seconds you get status 'running' and a task_id: poll get_task_status.
run_coding_task_async returns a task_id at once. Task ids stay valid as long as
OpenCode keeps the session. Pass task_id to run_coding_task to continue a session.
Status 'waiting_for_input' means OpenCode asks a permission or a question: answer
with respond_to_task."""


def build_server(service: TaskPool, settings: Settings, *, request_state_key: str | None = None) -> MCPServer:
    tasks = TasksExtension(service, auth_configured=bool(auth_methods(settings)))  # MCP Tasks, both eras
    mcp = MCPServer(
        "opencode-mcp-gateway",
        version=__version__,
        instructions=INSTRUCTIONS,
        request_state_security=request_state_security(request_state_key),
        extensions=[tasks],
    )
    as_caller = for_caller(auth_configured=bool(auth_methods(settings)))  # tasks belong to their caller
    lister = TaskLister(service)
    mcp.middleware.append(ToolCalls(lambda name: mcp._tool_manager.get_tool(name) is not None, service))
    mcp.middleware.append(ToolListCache())  # the tools never change: list them once per protocol version

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
        *,
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
            tid = await submit(
                prompt,
                agent,
                model,
                directory,
                title,
                task_id,
                max_tokens,
                max_cost_usd,
                repository,
                ref,
                branch,
                push,
                isolate,
                notify_url,
                report=report,
                read_only=read_only,
                output_schema=output_schema,
                attachments=attachments,
            )
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
        tid = await submit(
            prompt,
            agent,
            model,
            directory,
            title,
            task_id,
            max_tokens,
            max_cost_usd,
            repository,
            ref,
            branch,
            push,
            isolate,
            notify_url,
            report=None,
            read_only=read_only,
            output_schema=output_schema,
            attachments=attachments,
        )
        return guided(await service.view(tid, with_files=False))

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

    @mcp.tool(annotations=READ_ONLY)
    @tool_errors
    async def list_agents(ctx: Context) -> AgentsView:
        """The agents OpenCode offers (name, description, mode). Pass a primary agent's
        name as `agent` to run_coding_task."""
        if service.sandboxes is not None:  # asked of the caller's own sandbox (started if need be)
            agents = await as_caller(lambda ctx: service.agents())(ctx=ctx)
        else:
            agents = await service.agents()
        return AgentsView(
            agents=[Agent(name=a.name, description=a.description or None, mode=a.mode) for a in agents],
            default_agent=settings.default_agent,
        )

    @mcp.tool(annotations=READ_ONLY)
    async def health_check(ctx: Context) -> HealthView:
        """Health of the gateway and of OpenCode behind it, with OpenCode's version, per worker."""
        opencode, workers = await service.health()
        view = HealthView(
            version=__version__,
            opencode=opencode,
            event_stream_connected=any(w.event_stream_connected for w in workers),
            permission_policy=settings.permission_policy,
            workers=workers,
        )
        if service.sandboxes is not None:  # which sandboxes exist is the admin's to see
            admin = is_admin(ctx, auth_configured=bool(auth_methods(settings)))
            view.workers = workers if admin else []
            view.sandboxes = await service.sandboxes.health() if admin else None
        return view

    keep_text_as_given(mcp)  # after every tool is registered
    tasks.attach(mcp)
    return mcp
