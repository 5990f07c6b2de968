"""Metrics, JSON logs and traces of a gateway in front of the real opencode serve."""

from __future__ import annotations

import json
import secrets
from typing import Any, cast

import anyio
import httpx2
import mcp
import pytest
from mcp.types import RequestParamsMeta

from tests.support.client import data, mcp_session, script
from tests.support.otlp import OtlpReceiver
from tests.support.procs import Gateway, OpenCodeServer
from tests.support.scrape import Samples, scrape, wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOKEN = "obs-bearer-7c1d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "fake/fake-model"  # the fake LLM reports 100 input and 20 output tokens per model step


def observed(gateways: Any) -> Gateway:
    gateway: Gateway = gateways.get(LOG_FORMAT="json", MCP_BEARER_TOKEN=TOKEN)
    return gateway


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return after.get_value(name, **labels) - before.get_value(name, **labels)


async def test_metrics_count_known_traffic(gateways: Any) -> None:
    gw = observed(gateways)
    before = scrape(gw.url)
    two_steps = script({"tool": "bash", "args": {"command": "true", "description": "noop"}}, {"text": "two"})
    async with mcp_session(gw.mcp_url, headers=AUTH) as s:
        for _ in range(3):
            data(await s.call_tool("health_check", {}))
        for _ in range(2):
            data(await s.call_tool("list_agents", {}))
        assert (await s.call_tool("get_task_status", {"task_id": "not-a-task"})).is_error
        one = data(await s.call_tool("run_coding_task", {"prompt": script({"text": "one"})}))
        two = data(await s.call_tool("run_coding_task", {"prompt": two_steps}))
        started = data(await s.call_tool("run_coding_task_async", {"prompt": script({"text": "three", "hang": 1})}))
        during = scrape(gw.url)
        three = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30}))
    assert [one["status"], two["status"], three["status"]] == ["completed"] * 3

    assert delta(during, before, "ocgw_tasks_running") == 1  # the async task, until it ends
    assert during.get_value("ocgw_mcp_sessions") >= 1
    after = wait_for(gw.url, lambda m: delta(m, before, "ocgw_tasks_finished_total", status="completed") >= 3)
    calls = "ocgw_tool_calls_total"
    assert delta(after, before, calls, tool="health_check", outcome="ok") == 3
    assert delta(after, before, calls, tool="list_agents", outcome="ok") == 2
    assert delta(after, before, calls, tool="get_task_status", outcome="error") == 1
    assert delta(after, before, calls, tool="get_task_status", outcome="ok") == 1
    assert delta(after, before, calls, tool="run_coding_task", outcome="ok") == 2
    assert delta(after, before, calls, tool="run_coding_task_async", outcome="ok") == 1
    assert delta(after, before, "ocgw_tool_call_duration_seconds_count", tool="run_coding_task") == 2
    assert delta(after, before, "ocgw_tool_call_duration_seconds_sum", tool="run_coding_task") > 0
    assert delta(after, before, "ocgw_tasks_started_total") == 3
    assert delta(after, before, "ocgw_tasks_finished_total", status="completed") == 3
    assert delta(after, before, "ocgw_tasks_finished_total", status="failed") == 0
    assert delta(after, before, "ocgw_tasks_running") == 0
    steps = 4  # one, two (a tool step and an answer), three
    assert delta(after, before, "ocgw_llm_tokens_total", model=MODEL, kind="input") == 100 * steps
    assert delta(after, before, "ocgw_llm_tokens_total", model=MODEL, kind="output") == 20 * steps
    assert delta(after, before, "ocgw_llm_cost_usd_total", model=MODEL) == 0  # no price list for the fake
    assert after.get_value("ocgw_opencode_up", worker="w0") == 1
    assert delta(after, before, "ocgw_opencode_request_duration_seconds_count", worker="w0", outcome="ok") > 10
    assert ("ocgw_event_stream_reconnects_total", frozenset({("worker", "w0")})) in after
    assert ("ocgw_opencode_restarts_total", frozenset()) in after
    assert not any("ses_" in value or "msg_" in value for _, labels in after for _, value in labels)


async def test_metrics_need_no_token_and_no_allowed_host(gateways: Any) -> None:
    gw = gateways.get(MCP_BEARER_TOKEN=TOKEN, ALLOWED_HOSTS="gateway.example.com")
    assert httpx2.post(gw.mcp_url, json={}, headers={"host": "10.1.2.3:8080"}).status_code == 421
    scraped = httpx2.get(gw.url + "/metrics", headers={"host": "10.1.2.3:8080"})
    assert scraped.status_code == 200 and "ocgw_tool_calls_total" in scraped.text


async def test_json_logs_carry_ids_and_no_secrets(gateways: Any) -> None:
    gw = observed(gateways)
    marker = f"PROMPT-TEXT-{secrets.token_hex(4)}"
    request_id = f"req-{secrets.token_hex(6)}"
    headers = {**AUTH, "X-Request-Id": request_id}
    async with mcp_session(gw.mcp_url, headers=headers) as s:
        done = data(await s.call_tool("run_coding_task", {"prompt": script({"text": "logged"}, say=marker)}))
        refused = await s.call_tool("get_task_status", {"task_id": "ses_0000000000000000000000000"})
    assert refused.is_error
    await anyio.sleep(0.5)
    text = gw.logs()
    records = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is one JSON object
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    mine = [r for r in records if r.get("request_id") == request_id]
    calls = [r for r in mine if r["logger"] == "opencode_mcp_gateway.calls"]
    run = next(r for r in calls if r["tool"] == "run_coding_task")
    assert run["task_id"] == done["task_id"] and run["outcome"] == "ok" and run["duration_ms"] > 0
    assert run["mcp_session_id"] and run["level"] == "INFO"
    failed = next(r for r in calls if r["tool"] == "get_task_status")
    assert failed["outcome"] == "error" and failed["task_id"] == "ses_0000000000000000000000000"
    access = [r for r in mine if r["logger"] == "uvicorn.access"]
    assert access and all(r["path"] == "/mcp" and r["method"] in ("GET", "POST", "DELETE") for r in access)
    assert any(r.get("mcp_session_id") == run["mcp_session_id"] for r in access)
    assert TOKEN not in text and marker not in text


async def test_a_trace_continues_the_callers(tmp_path: Any, opencode: OpenCodeServer) -> None:
    receiver = OtlpReceiver()
    endpoint = receiver.start()
    env = {
        "OPENCODE_BASE_URL": opencode.url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    gw = Gateway(tmp_path, env).start()
    meta_trace, header_trace, modern_trace = (secrets.token_hex(16) for _ in range(3))
    try:
        async with mcp_session(gw.mcp_url) as s:
            meta = cast(RequestParamsMeta, {"traceparent": f"00-{meta_trace}-{secrets.token_hex(8)}-01"})
            done = data(await s.call_tool("run_coding_task", {"prompt": script({"text": "traced"})}, meta=meta))
        async with mcp.Client(gw.mcp_url) as c:  # protocol 2026-07-28: per-request _meta, no session
            assert c.session.protocol_version == "2026-07-28"
            modern = cast(RequestParamsMeta, {"traceparent": f"00-{modern_trace}-{secrets.token_hex(8)}-01"})
            await c.call_tool("health_check", {}, meta=modern)
        header = {"traceparent": f"00-{header_trace}-{secrets.token_hex(8)}-01"}
        async with mcp_session(gw.mcp_url, headers=header) as s:
            data(await s.call_tool("list_agents", {}))
        for _ in range(100):
            if (
                receiver.of_trace(header_trace)
                and receiver.of_trace(modern_trace)
                and any(s.name.startswith("opencode") for s in receiver.of_trace(meta_trace))
            ):
                break
            await anyio.sleep(0.1)
    finally:
        gw.stop()
        receiver.stop()
    spans = receiver.of_trace(meta_trace)
    tool = next(s for s in spans if s.name == "tool run_coding_task")
    assert tool.service == "opencode-mcp-gateway" and tool.attributes["ocgw.task_id"] == done["task_id"]
    children = [s for s in spans if s.parent_span_id == tool.span_id]
    names = {s.name for s in children}
    assert {"opencode POST", "opencode GET"} <= names, names
    paths = {s.attributes["url.path"] for s in children}
    assert f"/session/{done['session_id']}/prompt_async" in paths
    assert any(s.name == "tool list_agents" for s in receiver.of_trace(header_trace))
    assert any(s.name == "opencode GET" for s in receiver.of_trace(header_trace))
    assert any(s.name == "tool health_check" for s in receiver.of_trace(modern_trace))
