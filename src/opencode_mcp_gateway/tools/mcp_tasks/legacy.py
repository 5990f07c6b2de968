"""Experimental tasks of protocol 2025-11-25 (SEP-1686), where the SDK leaves no hook.

The SDK sieves every 2025-era result through that era's schema, which would strip a
`CreateTaskResult` down to an invalid `CallToolResult`, and it has no place for the
`tasks` capability or a tool's `execution`. So these three live in a server middleware,
above the sieve: `initialize` gains `capabilities.tasks`, `tools/list` marks
run_coding_task `execution.taskSupport: "optional"`, and a `tools/call` with `task`
returns `{"task": …}`. `tasks/result` and `tasks/list` (2025-only methods) are here too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import INVALID_PARAMS, METHOD_NOT_FOUND, ElicitResult, PaginatedRequestParams
from pydantic import BaseModel

from ...tasks import Asker, TaskError
from ...tasks.views import PendingRequest
from ..elicitation import form_request, to_answer
from .door import TaskDoor, TaskParams, error_text, started
from .mode import task_mode
from .shapes import LEGACY_ERA, POLL_INTERVAL_MS, TOOL, related, summary, task

log = logging.getLogger(__name__)
CAPABILITY: dict[str, Any] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
IMMEDIATE = "io.modelcontextprotocol/model-immediate-response"  # what a host may tell the model meanwhile
RESULT_WAIT_SECONDS = 300.0  # one wait of tasks/result; it waits again until the task ends
LIST_PAGE = 50


def _wire(result: HandlerResult) -> dict[str, Any]:
    if isinstance(result, BaseModel):
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dict(result) if isinstance(result, Mapping) else {}


class LegacyTasks:
    """The server middleware, and the handlers of the 2025-only methods."""

    def __init__(self, door: TaskDoor) -> None:
        self.door = door

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "initialize":
            result = _wire(await call_next(ctx))
            if result.get("protocolVersion") == LEGACY_ERA:  # the one handshake version with tasks
                result["capabilities"] = {**result.get("capabilities", {}), "tasks": CAPABILITY}
            return result
        if ctx.protocol_version != LEGACY_ERA:
            return await call_next(ctx)
        if ctx.method == "tools/list":
            result = _wire(await call_next(ctx))
            for tool in result.get("tools", []):
                if tool.get("name") == TOOL:
                    tool["execution"] = {"taskSupport": "optional"}
            return result
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        if ctx.method == "tools/call" and params.get("task") is not None:
            return await self._create(ctx, call_next, str(params.get("name")))
        return await call_next(ctx)

    async def _create(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, name: str) -> HandlerResult:
        if name != TOOL:  # the spec's answer for a tool whose taskSupport is "forbidden"
            raise MCPError(METHOD_NOT_FOUND, f"tool {name!r} does not support task-augmented execution")
        with task_mode():
            result = await call_next(ctx)
        view = started(result)
        if view is None:  # nothing was started: the task-augmented call fails with the tool's reason
            raise MCPError(INVALID_PARAMS, error_text(result))
        log.info("task %s started as an MCP task", view.task_id, extra={"task_id": view.task_id})
        return {
            "task": task(view, modern=False),
            "_meta": {IMMEDIATE: f"Coding task {view.task_id} runs in the background."},
        }

    async def result(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        """Blocks until the task ends, then returns exactly what the blocking call returns.
        A pending permission or question is asked through the client's elicitation on this
        request's stream; a client that cannot be asked answers with respond_to_task."""
        with self.door.acting(ctx, params.task_id) as tid:
            ask = asker(ctx, str(tid))
            while True:
                view = await self.door.service.wait(tid, RESULT_WAIT_SECONDS, ask=ask)
                if view.status in ("completed", "failed", "aborted"):
                    break
                if view.status == "waiting_for_input" and ask is None:
                    await anyio.sleep(POLL_INTERVAL_MS / 1000)  # someone answers elsewhere
        wire = self.door.result_of(view).model_dump(by_alias=True, mode="json", exclude_none=True)
        return {**wire, "_meta": {**wire.get("_meta", {}), **related(view.task_id)}}

    async def list(self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams) -> dict[str, Any]:
        """The caller's tasks, newest first, one per session (list_tasks' pages)."""
        with self.door.caller(ctx):
            try:
                page = await self.door.lister.page(status=None, limit=LIST_PAGE, cursor=params.cursor)
            except TaskError as exc:  # a cursor that is not ours
                raise MCPError(INVALID_PARAMS, str(exc)) from None
        listed: dict[str, Any] = {"tasks": [summary(entry) for entry in page.tasks]}
        if page.next_cursor:
            listed["nextCursor"] = page.next_cursor
        return listed


def asker(ctx: ServerRequestContext[Any, Any], task_id: str) -> Asker | None:
    """Elicitation on the `tasks/result` stream, tied to the task; None when the client
    declared no elicitation."""
    caps = ctx.session.client_capabilities
    if caps is None or caps.elicitation is None:
        return None

    async def ask(request: PendingRequest) -> tuple[str, list[list[str]] | None] | None:
        try:
            answer = await ctx.session.send_request(
                form_request(request, related(task_id)),
                ElicitResult,
                metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
            )
        except Exception as exc:  # malformed answer, client error: fail closed
            log.info("elicitation for %s failed (%s); rejecting", request.id, exc)
            return None
        return to_answer(request, answer.content) if answer.action == "accept" else None

    return ask
