"""Per-task budgets against the real opencode serve: tokens, cost, ceilings, replicas."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_http import opencode_child_pid, spawn_env, wait_ready
from tests.support.client import data, error_text, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.procs import Gateway, OpenCodeServer, free_port
from tests.support.scrape import scrape, wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

# The fake LLM reports 100 input and 20 output tokens per model step.
TOOL_STEP = {"tool": "bash", "args": {"command": "true", "description": "noop"}}
STUCK = {"text": "never said", "hang": 60}  # the step the budget must stop


def total(view: dict[str, Any]) -> int:
    return sum(view["tokens"].values())


async def test_async_task_over_max_tokens_is_aborted_with_the_figures(gateway: Gateway) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        started = data(
            await s.call_tool(
                "run_coding_task_async", {"prompt": script(TOOL_STEP, TOOL_STEP, STUCK), "max_tokens": 200}
            )
        )
        assert started["budget"] == {"max_tokens": 200}
        # nobody waits: the gateway's watcher stops it; then we look
        final = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 40}))
    assert final["status"] == "aborted", final
    assert total(final) == 240  # two steps of 120: over 200 after the second
    assert final["error"] == "budget exceeded: 240 tokens > max_tokens 200"


async def test_blocking_task_within_budget_completes_and_over_budget_is_aborted(gateway: Gateway) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        fine = data(
            await s.call_tool("run_coding_task", {"prompt": script(TOOL_STEP, {"text": "ok"}), "max_tokens": 1000})
        )
        stopped = data(await s.call_tool("run_coding_task", {"prompt": script(TOOL_STEP, STUCK), "max_tokens": 100}))
    assert fine["status"] == "completed" and total(fine) == 240 and fine["error"] is None
    assert stopped["status"] == "aborted"
    assert stopped["error"] == "budget exceeded: 120 tokens > max_tokens 100"
    assert fine["budget"] == {"max_tokens": 1000}


async def test_a_follow_up_records_its_own_budget(gateway: Gateway) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        first = data(await s.call_tool("run_coding_task", {"prompt": script({"text": "first"})}))
        follow = {"prompt": script(TOOL_STEP, STUCK), "task_id": first["task_id"], "max_tokens": 100}
        second = data(await s.call_tool("run_coding_task", follow))
    assert first["status"] == "completed" and first["budget"] is None
    assert second["session_id"] == first["session_id"] and second["task_id"] != first["task_id"]
    assert (second["status"], second["budget"]) == ("aborted", {"max_tokens": 100})
    assert second["error"] == "budget exceeded: 120 tokens > max_tokens 100"


async def test_defaults_and_ceilings_and_every_replica_reports_the_same(
    gateways: Any, opencode: OpenCodeServer, tmp_path: Path
) -> None:
    gw = gateways.get(TASK_MAX_TOKENS="150", TASK_MAX_TOKENS_CEILING="500")
    async with mcp_session(gw.mcp_url) as s:
        too_much = await s.call_tool("run_coding_task_async", {"prompt": script({"text": "x"}), "max_tokens": 5000})
        lowered = data(await s.call_tool("run_coding_task_async", {"prompt": script({"text": "x"}), "max_tokens": 50}))
        default = data(await s.call_tool("run_coding_task", {"prompt": script(TOOL_STEP, TOOL_STEP, STUCK)}))
        assert data(await s.call_tool("get_task_status", {"task_id": lowered["task_id"], "wait_seconds": 20}))
    assert too_much.is_error and "TASK_MAX_TOKENS_CEILING" in error_text(too_much)
    assert lowered["budget"] == {"max_tokens": 50}
    assert default["status"] == "aborted" and default["budget"] == {"max_tokens": 150}
    assert default["error"] == "budget exceeded: 240 tokens > max_tokens 150"
    other = Gateway(tmp_path / "replica", {"OPENCODE_BASE_URL": opencode.url}).start()
    try:
        async with mcp_session(other.mcp_url) as s:
            seen = data(await s.call_tool("get_task_status", {"task_id": default["task_id"]}))
    finally:
        other.stop()
    assert (seen["status"], seen["error"], seen["budget"]) == ("aborted", default["error"], {"max_tokens": 150})


async def test_spawn_mode_prices_the_model_and_enforces_max_cost(tmp_path: Path, fake_llm: FakeLLM) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    port = free_port()
    env = spawn_env(fake_llm, port, workspace, tmp_path / "state", api_key="sk-cost-secret-42")
    # $1000 per million input tokens, $5000 per million output: 100 in + 20 out = $0.20 a step
    env.update({"MODEL_COST_INPUT_PER_MTOK": "1000", "MODEL_COST_OUTPUT_PER_MTOK": "5000", "LOG_FORMAT": "json"})
    gw = Gateway(tmp_path, env, args=("--spawn-opencode",)).start()
    try:
        wait_ready(gw)
        async with mcp_session(gw.mcp_url) as s:
            priced = data(await s.call_tool("run_coding_task", {"prompt": script(TOOL_STEP, {"text": "priced"})}))
            capped = data(
                await s.call_tool(
                    "run_coding_task", {"prompt": script(TOOL_STEP, TOOL_STEP, STUCK), "max_cost_usd": 0.3}
                )
            )
        assert priced["status"] == "completed" and priced["cost"] == pytest.approx(0.4)
        assert priced["tokens"]["input"] == 200 and priced["tokens"]["output"] == 40
        assert capped["status"] == "aborted" and capped["cost"] == pytest.approx(0.4)
        assert capped["error"] == "budget exceeded: $0.4000 > max_cost_usd 0.3"
        model = "gateway/spawned-model"
        after = wait_for(gw.url, lambda m: m.get_value("ocgw_tasks_finished_total", status="aborted") == 1)
        assert after.get_value("ocgw_llm_cost_usd_total", model=model) == pytest.approx(0.8)
        assert after.get_value("ocgw_llm_tokens_total", model=model, kind="input") == 400
        assert after.get_value("ocgw_tasks_finished_total", status="completed") == 1

        os.kill(opencode_child_pid(port), signal.SIGKILL)  # OpenCode dies: the log tells what it said last
        wait_ready(gw, timeout=30)
        assert scrape(gw.url).get_value("ocgw_opencode_restarts_total") == 1
    finally:
        assert gw.stop() == 0
    records = [json.loads(line) for line in gw.logs().splitlines() if line.strip()]
    died = next(r for r in records if r["msg"].startswith("opencode serve died"))
    assert died["level"] == "WARNING" and "opencode server listening on" in died["msg"]
    budget_line = next(r for r in records if "aborting task" in r["msg"])
    assert budget_line["task_id"] == capped["task_id"] and "max_cost_usd 0.3" in budget_line["msg"]
    assert "sk-cost-secret-42" not in gw.logs()


async def test_a_replica_that_did_not_start_the_task_enforces_its_budget(
    opencode: OpenCodeServer, tmp_path: Path
) -> None:
    starter = Gateway(tmp_path / "starter", {"OPENCODE_BASE_URL": opencode.url}).start()
    slow_start = {**TOOL_STEP, "hang": 6}  # time enough to stop the starter and start another gateway
    try:
        async with mcp_session(starter.mcp_url) as s:
            prompt = script(slow_start, TOOL_STEP, STUCK)
            started = data(await s.call_tool("run_coding_task_async", {"prompt": prompt, "max_tokens": 200}))
    finally:
        starter.stop()  # a gateway that stops leaves its tasks running
    other = Gateway(tmp_path / "other", {"OPENCODE_BASE_URL": opencode.url}).start()
    try:
        async with mcp_session(other.mcp_url) as s:
            final = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 40}))
        assert (final["status"], final["error"]) == ("aborted", "budget exceeded: 240 tokens > max_tokens 200")
        untouched = scrape(other.url)  # it enforced the budget but did not start the task: no metric counts it
        assert untouched.get_value("ocgw_tasks_finished_total", status="aborted") == 0
    finally:
        other.stop()
    assert f"following task {started['task_id']} for its budget" in other.logs()
    assert f"aborting task {started['task_id']}: budget exceeded" in other.logs()
