"""Every tool against the real `opencode serve`, driven by the MCP SDK client over HTTP."""

from __future__ import annotations

import uuid

import anyio
import pytest

from opencode_mcp_gateway.opencode.pins import OPENCODE_VERSION
from tests.support.client import data, error_text, mcp_session, script
from tests.support.procs import Gateway, OpenCodeServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

EXPECTED_TOOLS = {
    "run_coding_task",
    "run_coding_task_async",
    "get_task_status",
    "get_task_messages",
    "get_task_diff",
    "abort_task",
    "list_agents",
    "health_check",
    "respond_to_task",
    "list_tasks",
}


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


async def test_tools_have_schemas_descriptions_and_annotations(gateway: Gateway) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
    assert set(tools) >= EXPECTED_TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 30, tool.name
        assert tool.output_schema is not None, tool.name
    for name in ("get_task_status", "get_task_messages", "get_task_diff", "list_agents", "health_check", "list_tasks"):
        hints = tools[name].annotations
        assert hints is not None and hints.read_only_hint is True and hints.idempotent_hint is True, name
    abort = tools["abort_task"].annotations
    assert abort is not None and abort.idempotent_hint is True and abort.destructive_hint is False
    run = tools["run_coding_task"].input_schema
    assert run["required"] == ["prompt"]
    assert {"agent", "model", "directory", "title", "timeout_seconds"} <= set(run["properties"])
    assert "timeout_seconds" not in tools["run_coding_task_async"].input_schema["properties"]


async def test_run_coding_task_edits_a_file_and_reports_it(gateway: Gateway, opencode: OpenCodeServer) -> None:
    name = unique("calc") + ".py"
    steps = (
        {"tool": "write", "args": {"filePath": name, "content": "def add(a, b):\n    return a + b\n"}},
        {"text": f"I created {name} with an add function."},
    )
    updates: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, message))

    async with mcp_session(gateway.mcp_url) as s:
        result = data(await s.call_tool("run_coding_task", {"prompt": script(*steps)}, progress_callback=on_progress))
    assert result["status"] == "completed"
    assert result["result"] == f"I created {name} with an add function."
    assert result["error"] is None
    assert (opencode.workspace / name).read_text() == "def add(a, b):\n    return a + b\n"
    assert result["files_changed"] == [{"path": name, "status": "added", "additions": 2, "deletions": 0}]
    assert result["task_id"].startswith(result["session_id"] + ".msg_")
    assert result["tokens"]["input"] > 0 and result["completed_at"]
    values = [v for v, _ in updates]
    assert values == sorted(values) and len(set(values)) == len(values), "progress must increase"
    assert any(m and f"write on {name}" in m for _, m in updates), updates


async def test_async_task_then_status_messages_and_diff(gateway: Gateway) -> None:
    name = unique("notes") + ".txt"
    steps = (
        {"tool": "write", "args": {"filePath": name, "content": "one\ntwo\n"}, "hang": 1},
        {"tool": "bash", "args": {"command": f"cat {name}", "description": "show file"}},
        {"text": "Wrote and checked the notes."},
    )
    async with mcp_session(gateway.mcp_url) as s:
        started = data(await s.call_tool("run_coding_task_async", {"prompt": script(*steps), "title": "notes"}))
        assert started["status"] == "running"
        task_id = started["task_id"]
        final = data(await s.call_tool("get_task_status", {"task_id": task_id, "wait_seconds": 60}))
        assert final["status"] == "completed", final
        assert final["title"].startswith("OCP Gateway: notes")
        status = data(await s.call_tool("get_task_status", {"task_id": task_id}))
        assert status["status"] == "completed" and status["result"] == "Wrote and checked the notes."
        assert [f["path"] for f in status["files_changed"]] == [name]

        messages = data(await s.call_tool("get_task_messages", {"task_id": task_id}))
        roles = [m["role"] for m in messages["messages"]]
        assert roles == ["user", "assistant", "assistant", "assistant"]
        calls = [c for m in messages["messages"] for c in m["tool_calls"]]
        assert [(c["tool"], c["status"]) for c in calls] == [("write", "completed"), ("bash", "completed")]
        assert calls[1]["input"]["command"] == f"cat {name}"
        assert "one\ntwo" in calls[1]["output"]
        assert messages["truncated"] is False

        newest = data(await s.call_tool("get_task_messages", {"task_id": task_id, "limit": 1}))
        assert [m["text"] for m in newest["messages"]] == ["Wrote and checked the notes."]
        assert newest["truncated"] is True and "offset=1" in newest["note"]

        diff = data(await s.call_tool("get_task_diff", {"task_id": task_id}))
        assert diff["files"][0]["path"] == name and diff["files"][0]["additions"] == 2
        assert "+one" in diff["files"][0]["patch"] and diff["truncated"] is False


async def test_abort_running_task_then_abort_again_is_harmless(gateway: Gateway) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        started = data(await s.call_tool("run_coding_task_async", {"prompt": script({"text": "slow", "hang": 30})}))
        await anyio.sleep(1.5)
        aborted = data(await s.call_tool("abort_task", {"task_id": started["task_id"]}))
        assert aborted["aborted"] is True and aborted["status"] == "aborted"
        status = data(await s.call_tool("get_task_status", {"task_id": started["task_id"]}))
        assert status["status"] == "aborted"
        again = data(await s.call_tool("abort_task", {"task_id": started["task_id"]}))
        assert again["aborted"] is False and again["status"] == "aborted"
        assert "already ended" in again["message"]


async def test_timeout_returns_running_and_the_task_goes_on(gateway: Gateway) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        result = data(
            await s.call_tool(
                "run_coding_task", {"prompt": script({"text": "finally done", "hang": 4}), "timeout_seconds": 1}
            )
        )
        assert result["status"] == "running" and result["task_id"]
        final = data(await s.call_tool("get_task_status", {"task_id": result["task_id"], "wait_seconds": 30}))
        assert final["status"] == "completed" and final["result"] == "finally done"


async def test_provider_error_is_a_failed_task_not_a_tool_error(gateway: Gateway) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        result = await s.call_tool(
            "run_coding_task", {"prompt": script({"error": 401, "message": "invalid api key for fake"})}
        )
    body = data(result)
    assert body["status"] == "failed"
    assert "invalid api key for fake" in body["error"] and "401" in body["error"]


async def test_list_agents_and_health_check(gateway: Gateway) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        agents = data(await s.call_tool("list_agents", {}))["agents"]
        health = data(await s.call_tool("health_check", {}))
    build = next(a for a in agents if a["name"] == "build")
    assert build["mode"] == "primary" and build["description"]
    assert {"plan", "explore"} <= {a["name"] for a in agents}
    assert health["gateway"] == "ok"
    assert health["opencode"]["healthy"] is True and health["opencode"]["version"] == OPENCODE_VERSION


@pytest.mark.parametrize(
    ("tool", "args", "says"),
    [
        ("run_coding_task", {"prompt": "   "}, "prompt is empty"),
        ("run_coding_task_async", {"prompt": ""}, "prompt is empty"),
        ("get_task_status", {"task_id": "not-a-task"}, "not a task id"),
        ("get_task_status", {"task_id": "ses_0000000000000000000000000.msg_000000000000000000000000"}, "unknown task"),
        ("get_task_messages", {"task_id": "nope"}, "not a task id"),
        ("get_task_diff", {"task_id": "ses_0000000000000000000000000"}, "unknown task"),
        ("abort_task", {"task_id": "ses_0000000000000000000000000.msg_0000000000000000"}, "unknown task"),
        ("run_coding_task", {"prompt": "x", "agent": "no-such-agent"}, "offers: build"),
        ("run_coding_task", {"prompt": "x", "model": "fake/no-such-model"}, "fake/fake-model"),
        ("run_coding_task", {"prompt": "x", "model": "nonsense"}, "provider/model"),
        ("run_coding_task", {"prompt": "x", "directory": "/definitely/not/here"}, "does not exist"),
        ("run_coding_task", {"prompt": "x", "timeout_seconds": -5}, "timeout_seconds"),
    ],
)
async def test_bad_input_is_a_tool_error_that_says_what_to_fix(
    gateway: Gateway, tool: str, args: dict[str, object], says: str
) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        result = await s.call_tool(tool, args)
    assert result.is_error, result
    assert says in error_text(result)


async def test_unknown_task_id_in_other_calls(gateway: Gateway) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        result = await s.call_tool(
            "respond_to_task", {"task_id": "ses_0000000000000000000000000", "request_id": "per_1", "reply": "once"}
        )
    assert result.is_error and "unknown task" in error_text(result)


async def test_task_id_resolves_in_a_new_gateway_process(
    gateway: Gateway, gateways: object, opencode: OpenCodeServer, tmp_path: object
) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        done = data(await s.call_tool("run_coding_task", {"prompt": script({"text": "remember me"})}))
    other = Gateway(opencode.root / "other", {"OPENCODE_BASE_URL": opencode.url}).start()
    try:
        async with mcp_session(other.mcp_url) as s:
            seen = data(await s.call_tool("get_task_status", {"task_id": done["task_id"]}))
    finally:
        other.stop()
    assert seen["status"] == "completed" and seen["result"] == "remember me"
