"""MCP Tasks against the real `opencode serve`, in both protocol eras, with a raw JSON-RPC
client (the SDK's client speaks neither): the 2026-07-28 extension `io.modelcontextprotocol/tasks`
and the experimental tasks of 2025-11-25. Every result is checked against the published
schema of its era."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from opencode_mcp_gateway.tasks import parse_task_id
from tests.conftest import GatewayPool
from tests.e2e.test_long_tasks import outside_file, write_outside
from tests.support.client import script
from tests.support.procs import Gateway, OpenCodeServer
from tests.support.raw_mcp import LEGACY, MODERN, RawMCP, RpcError
from tests.support.schemas import check

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
ERAS = pytest.mark.parametrize("era", [MODERN, LEGACY], ids=["2026", "2025"])
ALICE_KEY = "alice-key-0123456789abcdefghijkl"
BOB_KEY = "bob-key-0123456789abcdefghijklmno"


async def create(c: RawMCP, arguments: dict[str, Any]) -> dict[str, Any]:
    """run_coding_task as a task, in the client's era; the Task (checked against the schema)."""
    if c.era == MODERN:
        created = await c.call("run_coding_task", arguments)
        check(MODERN, "CreateTaskResult", created)
        return created
    handle = await c.call("run_coding_task", arguments, task={"ttl": 600_000})
    check(LEGACY, "CreateTaskResult", handle)
    task: dict[str, Any] = handle["task"]
    return task


async def get(c: RawMCP, task_id: str) -> dict[str, Any]:
    found = await c.request("tasks/get", {"taskId": task_id})
    check(c.era, "GetTaskResult", found)
    return found


async def until(c: RawMCP, task_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while (found := await get(c, task_id))["status"] not in statuses:
            await anyio.sleep(0.3)
    return found


async def final_result(c: RawMCP, task_id: str) -> dict[str, Any]:
    """The ordinary tool result: inlined by tasks/get (2026), from tasks/result (2025)."""
    if c.era == MODERN:
        result: dict[str, Any] = (await until(c, task_id, "completed", "failed"))["result"]
        return result
    result = await c.request("tasks/result", {"taskId": task_id})
    check(LEGACY, "CallToolResult", result)
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task_id}
    return result


def opencode_messages(opencode: OpenCodeServer, task_id: str) -> list[dict[str, Any]]:
    session = parse_task_id(task_id).session_id
    found: list[dict[str, Any]] = httpx2.get(f"{opencode.url}/session/{session}/message").json()
    return found


@ERAS
async def test_a_slow_task_is_a_handle_at_once_then_the_normal_result_from_any_gateway(
    era: str, gateways: GatewayPool, gateway: Gateway
) -> None:
    prompt = script({"text": "Done slowly.", "hang": 6})
    # A blocking call first: what a task must return in the end, and OpenCode warmed up, so the
    # 2 s below measure the gateway, not a cold OpenCode's first session (seconds on a busy machine).
    async with RawMCP.connect(gateway.mcp_url, era, extension=False) as plain:  # asks for no task
        blocking = await plain.call("run_coding_task", {"prompt": script({"text": "Done at once."})})
    async with RawMCP.connect(gateway.mcp_url, era) as c:
        started = time.monotonic()
        created = await create(c, {"prompt": prompt, "title": "slow task"})
        assert time.monotonic() - started < 2.0, "the handle must come within 2 s"  # the contract
        assert created["status"] == "working" and created["taskId"].startswith("ses_")
        assert (await get(c, created["taskId"]))["status"] == "working"
        tool_view = await c.call("get_task_status", {"task_id": created["taskId"]})  # one task, any door
        assert tool_view["structuredContent"]["status"] == "running"
        result = await final_result(c, created["taskId"])
    view = result["structuredContent"]
    assert view["status"] == "completed" and view["result"] == "Done slowly." and result["isError"] is False
    assert view["task_id"] == created["taskId"] and view["title"].endswith("slow task")
    assert set(view) == set(blocking["structuredContent"])  # the same result a blocking call returns
    async with RawMCP.connect(gateways.get(GATEWAY_ID="g1").mcp_url, era) as other:  # another process
        assert (await get(other, created["taskId"]))["status"] == "completed"


@ERAS
async def test_cancel_aborts_the_opencode_run(era: str, gateway: Gateway, opencode: OpenCodeServer) -> None:
    async with RawMCP.connect(gateway.mcp_url, era) as c:
        created = await create(c, {"prompt": script({"text": "never said", "hang": 60})})
        cancelled = await c.request("tasks/cancel", {"taskId": created["taskId"]})
        check(era, "CancelTaskResult", cancelled)
        final = await until(c, created["taskId"], "cancelled", timeout=20)
    assert final["statusMessage"] == "The task was aborted."
    if era == LEGACY:
        assert cancelled["status"] == "cancelled"  # 2025: cancelled before the answer
    (assistant,) = [m for m in opencode_messages(opencode, created["taskId"]) if m["info"]["role"] == "assistant"]
    assert assistant["info"]["error"]["name"] == "MessageAbortedError"  # OpenCode itself stopped the run


async def test_2026_a_permission_is_input_required_answered_by_tasks_update(
    gateways: GatewayPool, tmp_path: Path
) -> None:
    gw = gateways.get(PERMISSION_POLICY="ask")
    target = outside_file(tmp_path)
    async with RawMCP.connect(gw.mcp_url, MODERN) as c:
        created = await create(c, {"prompt": write_outside(target)})
        waiting = await until(c, created["taskId"], "input_required")
        ((key, form),) = waiting["inputRequests"].items()
        assert "external_directory" in form["params"]["message"]
        answer = {key: {"action": "accept", "content": {"decision": "once"}}}
        check(
            MODERN,
            "UpdateTaskResult",
            await c.request("tasks/update", {"taskId": created["taskId"], "inputResponses": answer}),
        )
        result = await final_result(c, created["taskId"])
    assert result["structuredContent"]["status"] == "completed" and target.read_text() == "outside\n"


async def test_2025_a_permission_is_asked_by_elicitation_on_tasks_result(gateways: GatewayPool, tmp_path: Path) -> None:
    gw = gateways.get(PERMISSION_POLICY="ask")
    target = outside_file(tmp_path)

    async def grant(request: dict[str, Any]) -> dict[str, Any]:
        return {"action": "accept", "content": {"decision": "once"}}

    async with RawMCP.connect(gw.mcp_url, LEGACY, capabilities={"elicitation": {}}, on_request=grant) as c:
        created = await create(c, {"prompt": write_outside(target)})
        await until(c, created["taskId"], "input_required")
        result = await final_result(c, created["taskId"])  # the client calls tasks/result and is asked there
    (asked,) = c.server_requests
    assert asked["method"] == "elicitation/create" and "external_directory" in asked["params"]["message"]
    assert asked["params"]["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": created["taskId"]}
    assert result["structuredContent"]["status"] == "completed" and target.read_text() == "outside\n"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, gateways: GatewayPool) -> Gateway:
    keys = tmp_path_factory.mktemp("task-keys") / "api-keys"
    keys.write_text(f"alice {ALICE_KEY}\nbob {BOB_KEY}\n")
    return gateways.get(MCP_API_KEYS_FILE=str(keys))


@ERAS
async def test_two_api_keys_keep_their_tasks_apart(era: str, keyed: Gateway) -> None:
    async with (
        RawMCP.connect(keyed.mcp_url, era, token=ALICE_KEY) as alice,
        RawMCP.connect(keyed.mcp_url, era, token=BOB_KEY) as bob,
    ):
        created = await create(alice, {"prompt": script({"text": "alice's"})})
        async_started = await alice.call("run_coding_task_async", {"prompt": script({"text": "also alice's"})})
        mine = await get(alice, async_started["structuredContent"]["task_id"])  # a tool-started task, via tasks/get
        refusals = []
        for method in ("tasks/get", "tasks/cancel"):
            for task_id in (created["taskId"], created["taskId"].replace("ses_", "ses_x")):  # hers, and none
                with pytest.raises(RpcError) as refused:
                    await bob.request(method, {"taskId": task_id})
                refusals.append((refused.value.code, refused.value.message))
        if era == LEGACY:
            theirs = [t["taskId"] for t in (await bob.request("tasks/list"))["tasks"]]
            listed = await alice.request("tasks/list")
            check(LEGACY, "ListTasksResult", listed)
            assert created["taskId"] not in theirs and created["taskId"] in [t["taskId"] for t in listed["tasks"]]
    assert mine["taskId"] == async_started["structuredContent"]["task_id"]
    assert set(refusals) == {(-32602, "Failed to retrieve task: Task not found")}  # someone else's = no such task


async def test_a_client_that_declares_nothing_gets_todays_blocking_call_with_progress(gateway: Gateway) -> None:
    async with RawMCP.connect(gateway.mcp_url, MODERN, extension=False) as c:
        done = await c.call(
            "run_coding_task", {"prompt": script({"text": "blocking", "hang": 2})}, _meta={"progressToken": "p1"}
        )
        with pytest.raises(RpcError) as refused:
            await c.request("tasks/get", {"taskId": done["structuredContent"]["task_id"]})
    assert done["resultType"] == "complete" and done["structuredContent"]["result"] == "blocking"
    assert any(n["method"] == "notifications/progress" for n in c.notifications)
    assert refused.value.code == -32021  # tasks/* without the extension


@ERAS
async def test_the_specs_errors(era: str, gateway: Gateway) -> None:
    async with RawMCP.connect(gateway.mcp_url, era) as c:
        codes = {}
        cases: list[tuple[str, str, dict[str, Any]]] = [
            ("unknown id", "tasks/get", {"taskId": "ses_0123456789abcdefghij.msg_0123456789abcdefghij"}),
            ("not an id", "tasks/get", {"taskId": "786512e2-9e0d-44bd-8f29-789f320fe840"}),
            ("no taskId", "tasks/get", {}),
            ("wrong type", "tasks/cancel", {"taskId": 7}),
        ]
        for name, method, params in cases:
            with pytest.raises(RpcError) as refused:
                await c.request(method, params)
            codes[name] = refused.value.code
    assert codes == dict.fromkeys(codes, -32602)


async def test_2026_listening_for_task_ids_is_acknowledged_without_them(gateway: Gateway) -> None:
    """No notifications/tasks (docs/design.md): the acknowledgement says so by leaving the
    task ids out, which tells a client to poll tasks/get."""
    async with RawMCP.connect(gateway.mcp_url, MODERN) as c:
        ack = await c.first_message(
            "subscriptions/listen",
            {"notifications": {"taskIds": ["ses_0123456789abcdefghij"], "toolsListChanged": True}},
        )
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["notifications"] == {"toolsListChanged": True}
