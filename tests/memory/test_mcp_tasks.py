"""MCP Tasks on the whole app in process (fake OpenCode): the handlers, the mapping and
the errors, in both eras, spoken as raw JSON-RPC (the SDK's client speaks neither)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest

from opencode_mcp_gateway.app import create_app
from tests.support.fake_opencode import Ask, FakeOpenCode, Hold, Reply
from tests.support.in_memory import settings_for
from tests.support.raw_mcp import LEGACY, MODERN, RawMCP, RpcError
from tests.support.schemas import check

pytestmark = pytest.mark.anyio
URL = "http://localhost:8080/mcp"


@asynccontextmanager
async def gateway(fake: FakeOpenCode, **settings: Any) -> AsyncIterator[httpx2.ASGITransport]:
    app = create_app(settings_for(host="127.0.0.1", **settings), opencode_transport=fake.transport)
    async with app.router.lifespan_context(app):
        yield httpx2.ASGITransport(app=app)


async def test_2026_a_declaring_call_is_a_task_followed_to_its_normal_result() -> None:
    fake = FakeOpenCode()
    fake.queue(Hold(), Reply("Added."))
    async with gateway(fake) as app, RawMCP.connect(URL, MODERN, transport=app) as c:
        created = await c.call("run_coding_task", {"prompt": "Fix calc.py", "timeout_seconds": 600})
        assert created["resultType"] == "task" and created["status"] == "working", created
        assert created["ttlMs"] is None and created["pollIntervalMs"] > 0 and created["createdAt"]
        check(MODERN, "CreateTaskResult", created)
        working = await c.request("tasks/get", {"taskId": created["taskId"]})
        check(MODERN, "GetTaskResult", working)
        assert working["resultType"] == "complete" and working["status"] == "working"
        fake.resume(await fake.held())
        status = await c.call("get_task_status", {"task_id": created["taskId"], "wait_seconds": 5})
        done = await c.request("tasks/get", {"taskId": created["taskId"]})
    assert status["structuredContent"]["status"] == "completed"  # one task, any door
    check(MODERN, "GetTaskResult", done)
    assert done["status"] == "completed" and done["result"]["isError"] is False
    result = done["result"]["structuredContent"]
    assert result["task_id"] == created["taskId"] and result["result"] == "Added." and result["next_step"]


async def test_2026_input_required_is_answered_with_tasks_update() -> None:
    fake = FakeOpenCode()
    fake.queue(Ask(permission="bash", patterns=("make test",)), Reply("ran"))
    async with gateway(fake, permission_policy="ask") as app, RawMCP.connect(URL, MODERN, transport=app) as c:
        created = await c.call("run_coding_task", {"prompt": "Run the tests"})
        tid = created["taskId"]
        waiting = await _until_status(c, tid, "input_required")
        check(MODERN, "GetTaskResult", waiting)
        ((key, form),) = waiting["inputRequests"].items()
        assert key.startswith("per") and form["method"] == "elicitation/create"
        assert form["params"]["requestedSchema"]["properties"]["decision"]
        ack = await c.request(
            "tasks/update",
            {"taskId": tid, "inputResponses": {key: {"action": "accept", "content": {"decision": "once"}}, "x": {}}},
        )
        assert ack == {"resultType": "complete", "_meta": ack["_meta"]}
        check(MODERN, "UpdateTaskResult", ack)
        done = await _until_status(c, tid, "completed")
    assert done["result"]["structuredContent"]["result"] == "ran"


async def _until_status(c: RawMCP, task_id: str, status: str) -> dict[str, Any]:
    with anyio.fail_after(10):
        while True:
            found = await c.request("tasks/get", {"taskId": task_id})
            if found["status"] == status:
                return found
            await anyio.sleep(0.05)


async def test_2026_a_request_without_the_extension_gets_todays_behaviour_and_errors() -> None:
    fake = FakeOpenCode()
    fake.queue(Reply("Done."))
    async with gateway(fake) as app, RawMCP.connect(URL, MODERN, transport=app, extension=False) as c:
        blocking = await c.call("run_coding_task", {"prompt": "Do it"})
        assert blocking.get("resultType", "complete") == "complete"
        assert blocking["structuredContent"]["status"] == "completed"
        with pytest.raises(RpcError) as refused:
            await c.request("tasks/get", {"taskId": blocking["structuredContent"]["task_id"]})
    assert refused.value.code == -32021
    assert refused.value.data == {"requiredCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}}


@pytest.mark.parametrize(
    ("method", "params", "code"),
    [
        ("tasks/get", {"taskId": "ses_nosuchsession0001.msg_nosuchmessage0001"}, -32602),
        ("tasks/get", {"taskId": "not a task id"}, -32602),
        ("tasks/get", {}, -32602),
        ("tasks/cancel", {"taskId": "ses_nosuchsession0001"}, -32602),
        ("tasks/update", {"taskId": "ses_nosuchsession0001", "inputResponses": {}}, -32602),
        ("tasks/update", {"taskId": "ses_nosuchsession0001"}, -32602),
        ("tasks/list", {}, -32601),  # 2025-11-25 only: the extension has no list
        ("tasks/result", {"taskId": "ses_nosuchsession0001"}, -32601),
    ],
)
async def test_2026_errors_are_the_specs(method: str, params: dict[str, Any], code: int) -> None:
    async with gateway(FakeOpenCode()) as app, RawMCP.connect(URL, MODERN, transport=app) as c:
        with pytest.raises(RpcError) as refused:
            await c.request(method, params)
    assert refused.value.code == code, refused.value.message


async def test_2025_capability_task_support_task_and_result() -> None:
    fake = FakeOpenCode()
    fake.queue(Hold(), Reply("Added."))
    async with gateway(fake) as app, RawMCP.connect(URL, LEGACY, transport=app) as c:
        assert c.init_result["capabilities"]["tasks"] == {
            "list": {},
            "cancel": {},
            "requests": {"tools": {"call": {}}},
        }
        check(LEGACY, "ServerCapabilities", c.init_result["capabilities"])
        tools = {t["name"]: t for t in (await c.request("tools/list"))["tools"]}
        check(LEGACY, "Tool", tools["run_coding_task"])
        assert tools["run_coding_task"]["execution"] == {"taskSupport": "optional"}
        assert "execution" not in tools["get_task_status"]
        handle = await c.call("run_coding_task", {"prompt": "Fix calc.py"}, task={"ttl": 60000})
        check(LEGACY, "CreateTaskResult", handle)
        created = handle["task"]
        assert created["status"] == "working" and created["ttl"] is None and created["pollInterval"] > 0
        got = await c.request("tasks/get", {"taskId": created["taskId"]})
        assert got["status"] == "working" and "result" not in got
        check(LEGACY, "GetTaskResult", got)
        fake.resume(await fake.held())
        result = await c.request("tasks/result", {"taskId": created["taskId"]})
        with pytest.raises(RpcError) as late:
            await c.request("tasks/cancel", {"taskId": created["taskId"]})
        with pytest.raises(RpcError) as not_a_task_tool:
            await c.call("list_agents", {}, task={})
        with pytest.raises(RpcError) as no_update:
            await c.request("tasks/update", {"taskId": created["taskId"], "inputResponses": {}})
    assert result["structuredContent"]["result"] == "Added." and result["isError"] is False
    check(LEGACY, "CallToolResult", result)
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": created["taskId"]}
    assert late.value.code == -32602 and "terminal status 'completed'" in late.value.message
    assert not_a_task_tool.value.code == -32601 and no_update.value.code == -32601


async def test_2025_cancel_aborts_and_answers_cancelled() -> None:
    fake = FakeOpenCode()
    fake.queue(Hold(), Reply("never"))
    async with gateway(fake) as app, RawMCP.connect(URL, LEGACY, transport=app) as c:
        created = (await c.call("run_coding_task", {"prompt": "Slow work"}, task={}))["task"]
        await fake.held()
        cancelled = await c.request("tasks/cancel", {"taskId": created["taskId"]})
        got = await c.request("tasks/get", {"taskId": created["taskId"]})
    assert cancelled["status"] == "cancelled" and got["status"] == "cancelled"
    check(LEGACY, "CancelTaskResult", cancelled)
    assert fake.counts()["POST /session/{sid}/abort"] == 1


async def test_2025_a_refused_task_call_is_an_error_naming_the_fix() -> None:
    async with gateway(FakeOpenCode()) as app, RawMCP.connect(URL, LEGACY, transport=app) as c:
        with pytest.raises(RpcError) as refused:
            await c.call("run_coding_task", {"prompt": "  "}, task={})
    assert refused.value.code == -32602 and "prompt is empty" in refused.value.message


async def test_2025_a_client_without_elicitation_answers_with_respond_to_task_while_result_waits() -> None:
    fake = FakeOpenCode()
    fake.queue(Ask(), Reply("went on"))
    found: dict[str, Any] = {}
    async with gateway(fake, permission_policy="ask") as app, RawMCP.connect(URL, LEGACY, transport=app) as c:
        created = (await c.call("run_coding_task", {"prompt": "Write outside"}, task={}))["task"]

        async def result() -> None:
            found.update(await c.request("tasks/result", {"taskId": created["taskId"]}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(result)
            waiting = await _until_status(c, created["taskId"], "input_required")
            status = (await c.call("get_task_status", {"task_id": created["taskId"]}))["structuredContent"]
            await c.call(
                "respond_to_task",
                {"task_id": created["taskId"], "request_id": status["pending"][0]["id"], "reply": "once"},
            )
    assert "inputRequests" not in waiting  # 2025: no inline requests; the client is asked on tasks/result
    assert found["structuredContent"]["status"] == "completed" and found["structuredContent"]["result"] == "went on"
    assert not c.server_requests  # it declared no elicitation: nothing was asked of it
