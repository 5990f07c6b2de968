"""The tasks extension on the SDK's extension points: advertised capability, `tasks/*`
request handlers, and the `tools/call` interceptor that makes a 2026-07-28 call a task.

Every handler acts for its caller (a task belongs to its caller: another's id is reported
exactly like one that does not exist) and reads the task from OpenCode.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import MCPServer, require_client_extension
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolRequestParams, PaginatedRequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ...fleet import TaskPool
from ..elicitation import answer_each
from .door import TaskDoor, TaskParams, UpdateParams, started
from .legacy import LegacyTasks
from .mode import task_mode
from .shapes import EXTENSION, LEGACY_ERA, TOOL, detailed, task

log = logging.getLogger(__name__)
BOTH_ERAS = frozenset({LEGACY_ERA, *MODERN_PROTOCOL_VERSIONS})


def is_modern(ctx: ServerRequestContext[Any, Any]) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def declares_extension(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request (2026-07-28: its own `_meta` capabilities) declares the extension."""
    caps = ctx.session.client_capabilities
    return caps is not None and EXTENSION in (caps.extensions or {})


class TasksExtension(Extension):
    identifier = EXTENSION

    def __init__(self, service: TaskPool, *, auth_configured: bool) -> None:
        self.door = TaskDoor(service, auth_configured=auth_configured)
        self.service = service
        self.legacy = LegacyTasks(self.door)

    def attach(self, mcp: MCPServer) -> None:
        """Once the tools exist: results are converted by the run tool itself, and the
        2025-11-25 middleware joins the chain."""
        self.door.tool = mcp._tool_manager.get_tool(TOOL)  # the SDK has no public lookup
        mcp.middleware.append(self.legacy)

    def methods(self) -> list[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        legacy = frozenset({LEGACY_ERA})
        return [
            MethodBinding("tasks/get", TaskParams, self.get, BOTH_ERAS),
            MethodBinding("tasks/cancel", TaskParams, self.cancel, BOTH_ERAS),
            MethodBinding("tasks/update", UpdateParams, self.update, modern),
            MethodBinding("tasks/result", TaskParams, self.legacy.result, legacy),
            MethodBinding("tasks/list", PaginatedRequestParams, self.legacy.list, legacy),
        ]

    # -- both eras -----------------------------------------------------------------------
    def _gate(self, ctx: ServerRequestContext[Any, Any]) -> None:
        if is_modern(ctx):  # -32021 without the extension in this request's capabilities
            require_client_extension(ctx, EXTENSION)

    async def get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        self._gate(ctx)
        with self.door.acting(ctx, params.task_id) as tid:
            if not is_modern(ctx):
                return task(await self.service.view(tid, with_files=False), modern=False)
            view = await self.service.view(tid)
            return detailed(view, self.door.result_of(view))

    async def cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        """Aborts the OpenCode session's run. 2026-07-28: an empty acknowledgement;
        2025-11-25: the task, now cancelled (a task that had ended is an error)."""
        self._gate(ctx)
        with self.door.acting(ctx, params.task_id) as tid:
            if is_modern(ctx):
                await self.service.abort(tid)  # an ended task stays as it ended
                return {}
            view = await self.service.view(tid, with_files=False)
            current = task(view, modern=False)
            if view.status in ("completed", "failed", "aborted"):
                raise MCPError(INVALID_PARAMS, f"Cannot cancel task: already in terminal status '{current['status']}'")
            await self.service.abort(tid)  # waits (bounded) until OpenCode shows the run stopped
            return task(await self.service.view(tid, with_files=False), modern=False)

    async def update(self, ctx: ServerRequestContext[Any, Any], params: UpdateParams) -> dict[str, Any]:
        """Answers to `inputRequests`, keyed by OpenCode's request ids. Keys that are not
        outstanding are ignored, as the extension asks; an acknowledgement either way."""
        self._gate(ctx)
        with self.door.acting(ctx, params.task_id) as tid:
            view = await self.service.view(tid, with_files=False)
            outstanding = {p.id: p for p in view.pending if p.id in params.input_responses}
            await answer_each(self.service, tid, outstanding, params.input_responses)
        return {}

    # -- 2026-07-28: a tools/call that declares the extension becomes a task ---------------
    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if params.name != TOOL or not is_modern(ctx) or not declares_extension(ctx):
            return await call_next(ctx)
        with task_mode():
            result = await call_next(ctx)
        view = started(result)
        if view is None:
            return result  # refused (bad input): the client reads why; no task exists
        log.info("task %s started as an MCP task", view.task_id, extra={"task_id": view.task_id})
        return {"resultType": "task", **task(view, modern=True)}
