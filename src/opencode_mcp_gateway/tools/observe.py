"""One wrapper around every tool call: metrics, the log (and audit) line, the trace span.

It sits in the MCP SDK's middleware chain (inside the SDK's own OpenTelemetry span), so
it sees each `tools/call` whole: which tool, who called (the identity the HTTP guard set
on the request), how long it took and whether the result was an error. The per-call log
line is also the audit line: identity, tool, task_id, outcome, duration_ms; never the
arguments (a prompt) or a credential.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from ..auth import identity_of_request
from ..observability import logs, metrics, tracing
from ..tasks.state import TERMINAL

log = logging.getLogger("opencode_mcp_gateway.calls")

UNKNOWN_TOOL = "unknown"  # label for names that are no tool here: labels stay bounded


class Settles(Protocol):
    """Told when a tool result shows a task ended (the budget trackers)."""

    def settle(self, task_id: str, status: str) -> None: ...


class ToolCalls:
    """`is_tool` tells real tool names from whatever a client sends."""

    def __init__(self, is_tool: Callable[[str], bool], tracker: Settles | None) -> None:
        self.is_tool = is_tool
        self.tracker = tracker

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params or {}
        name = params.get("name")
        tool = name if isinstance(name, str) and self.is_tool(name) else UNKNOWN_TOOL
        arguments = params.get("arguments")
        given = arguments.get("task_id") if isinstance(arguments, dict) else None
        task_id = given[:120] if isinstance(given, str) and given else None
        who = identity_of_request(ctx.request)
        meta = dict(ctx.meta) if ctx.meta else None
        headers = getattr(ctx.request, "headers", None)
        parent = tracing.caller_context(meta, headers if isinstance(headers, Mapping) else None)
        started = time.perf_counter()
        outcome = "error"
        ids = {**logs.ids_of(ctx.request), "tool": tool, "task_id": task_id, "identity": who.name if who else None}
        with logs.bound(**ids), tracing.tool_span(tool, parent, {"enduser.id": ids["identity"] or ""}) as span:
            try:
                result = await call_next(ctx)
                outcome = "error" if _field(result, "isError") is True else "ok"
                structured = _field(result, "structuredContent")
                handle = _field(result, "taskId") or _field(_field(result, "task") or {}, "taskId")  # MCP Tasks
                if isinstance(handle, str):
                    task_id = handle
                if isinstance(structured, dict) and isinstance(structured.get("task_id"), str):
                    task_id = structured["task_id"]
                    if self.tracker is not None and structured.get("status") in TERMINAL:
                        self.tracker.settle(task_id, str(structured["status"]))
                return result
            except anyio.get_cancelled_exc_class():
                outcome = "cancelled"
                raise
            finally:
                duration = time.perf_counter() - started
                metrics.TOOL_CALLS.labels(tool, "ok" if outcome == "ok" else "error").inc()
                metrics.TOOL_CALL_DURATION.labels(tool).observe(duration)
                if task_id:
                    span.set_attribute("ocgw.task_id", task_id)
                if outcome != "ok":
                    tracing.mark_error(span, outcome)
                about = "".join(
                    f", {k} {v}" for k, v in (("task", task_id), ("by", ids["identity"])) if v
                )  # the text format's audit trail; JSON has them as fields
                log.info(
                    "tool %s: %s in %.0f ms%s",
                    tool,
                    outcome,
                    duration * 1000,
                    about,
                    extra={"outcome": outcome, "duration_ms": round(duration * 1000, 1), "task_id": task_id},
                )


def _field(result: Any, key: str) -> Any:
    return result.get(key) if isinstance(result, Mapping) else getattr(result, key, None)
