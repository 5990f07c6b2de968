"""The per-call wrapper and the JSON log format, without a network."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from mcp.server.context import ServerRequestContext
from opentelemetry import context, propagate, trace
from starlette.requests import Request

from opencode_mcp_gateway.auth.identity import Identity, set_identity
from opencode_mcp_gateway.observability import logs, metrics, tracing
from opencode_mcp_gateway.tools.observe import ToolCalls

pytestmark = pytest.mark.anyio


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the process would print with LOG_FORMAT=json (formatted when emitted, as in production)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def tool_call(name: str, arguments: dict[str, Any], who: Identity | None) -> ServerRequestContext[Any, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [(b"mcp-session-id", b"sess-1")],
        "state": {logs.REQUEST_ID_KEY: "req-1", logs.SESSION_ID_KEY: "sess-1"},  # as RequestIds leaves them
    }
    if who is not None:
        set_identity(scope, who)
    return ServerRequestContext(
        session=None,  # type: ignore[arg-type]
        lifespan_context={},
        protocol_version="2025-11-25",
        method="tools/call",
        params={"name": name, "arguments": arguments},
        request=Request(scope),
    )


def count(tool: str, outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("ocgw_tool_calls_total", {"tool": tool, "outcome": outcome}) or 0.0


async def test_one_audit_line_per_call_with_identity_and_never_the_arguments(json_lines: io.StringIO) -> None:
    observe = ToolCalls(lambda name: name == "run_coding_task", tracker=None)
    before = count("run_coding_task", "ok")

    async def handler(_: Any) -> dict[str, Any]:
        logging.getLogger("opencode_mcp_gateway.tasks").info("inside the call")
        return {"isError": False, "structuredContent": {"task_id": "ses_a.msg_b", "status": "running"}}

    ctx = tool_call("run_coding_task", {"prompt": "secret plan for the repo"}, Identity("alice"))
    await observe(ctx, handler)
    assert count("run_coding_task", "ok") == before + 1
    inner, line = records(json_lines)
    assert inner["tool"] == "run_coding_task" and inner["identity"] == "alice" and inner["request_id"] == "req-1"
    assert line["logger"] == "opencode_mcp_gateway.calls"
    assert {k: line[k] for k in ("identity", "tool", "task_id", "outcome", "request_id", "mcp_session_id")} == {
        "identity": "alice",
        "tool": "run_coding_task",
        "task_id": "ses_a.msg_b",
        "outcome": "ok",
        "request_id": "req-1",
        "mcp_session_id": "sess-1",
    }
    assert isinstance(line["duration_ms"], float)
    assert line["msg"].startswith("tool run_coding_task: ok in ")  # text logs carry the audit trail in the message
    assert line["msg"].endswith(" ms, task ses_a.msg_b, by alice")
    assert "secret plan" not in json_lines.getvalue()


async def test_errors_and_unknown_tools_are_counted_with_bounded_labels(json_lines: io.StringIO) -> None:
    observe = ToolCalls(lambda name: name == "get_task_status", tracker=None)
    failed, unknown = count("get_task_status", "error"), count("unknown", "error")

    async def refuse(_: Any) -> dict[str, Any]:
        return {"isError": True, "content": [{"type": "text", "text": "unknown task_id"}]}

    await observe(tool_call("get_task_status", {"task_id": "ses_zz"}, None), refuse)
    await observe(tool_call("drop_tables_" + "x" * 50, {}, None), refuse)
    assert count("get_task_status", "error") == failed + 1 and count("unknown", "error") == unknown + 1
    first, second = records(json_lines)
    assert first["task_id"] == "ses_zz" and first["outcome"] == "error" and "identity" not in first
    assert second["tool"] == "unknown"


def test_uvicorns_access_line_becomes_fields() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "POST", "/mcp?x=1", "1.1", 200),
        None,
    )
    with logs.bound(request_id="r-9", mcp_session_id="s-9"):
        entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["msg"] == '1.2.3.4:5 - "POST /mcp?x=1 HTTP/1.1" 200'
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/mcp", 200)
    assert (entry["request_id"], entry["mcp_session_id"], entry["level"]) == ("r-9", "s-9", "INFO")
    assert entry["ts"].endswith("Z")


def test_without_an_exporter_no_span_is_made_or_sent_on() -> None:
    """Spans nobody exports cost CPU on every call: with no tracer provider, none is made,
    not even from a caller's trace context (which would otherwise travel on to OpenCode)."""
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)  # no OTLP endpoint set
    caller = propagate.extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    token = context.attach(caller)
    try:
        headers: dict[str, str] = {}
        with tracing.opencode_span("GET", "/global/health", "w0", headers) as span:
            assert span is trace.INVALID_SPAN
        with tracing.tool_span("health_check", None, {}) as span:
            assert span is trace.INVALID_SPAN
        assert headers == {}
    finally:
        context.detach(token)
