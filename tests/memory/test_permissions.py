"""The permission broker under each PERMISSION_POLICY, the input timeout, and respond_to_task."""

from __future__ import annotations

import anyio
import pytest

from opencode_mcp_gateway.observability import metrics
from opencode_mcp_gateway.tasks.permissions import DENY_MESSAGE, session_metadata
from tests.support.client import data, error_text
from tests.support.fake_opencode import Ask, FakeOpenCode, Hold, Question, Reply
from tests.support.in_memory import in_memory_gateway

pytestmark = pytest.mark.anyio


async def test_allow_grants_every_request_and_sessions_carry_allow_rules() -> None:
    async with in_memory_gateway(permission_policy="allow") as gw, gw.mcp() as c:
        gw.fake.queue(Ask(), Reply("wrote outside"))  # the session's rules make OpenCode ask nothing; if it does:
        started = data(await c.call_tool("run_coding_task_async", {"prompt": "x"}))
        await gw.fake.until(lambda: not gw.fake.world.permissions)
        done = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 5}))
        session = gw.fake.world.sessions[done["session_id"]]
    assert done["status"] == "completed" and done["result"] == "wrote outside"
    assert [s["status"] for s in gw.fake.tool_states(done["session_id"])] == ["completed"]
    assert session["metadata"] == session_metadata("allow")
    assert {"permission": "*", "pattern": "*", "action": "allow"} in session["permission"]


async def test_deny_rejects_with_a_reason_and_the_agent_carries_on() -> None:
    async with in_memory_gateway(permission_policy="deny") as gw, gw.mcp() as c:
        gw.fake.queue(Ask(permission="bash", patterns=("rm -rf /",)), Reply("did without"))
        started = data(await c.call_tool("run_coding_task_async", {"prompt": "x"}))
        await gw.fake.until(lambda: not gw.fake.world.permissions)
        done = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 5}))
    assert done["status"] == "completed" and done["result"] == "did without"
    (state,) = gw.fake.tool_states(done["session_id"])
    assert state["status"] == "error" and DENY_MESSAGE in str(state["error"])
    assert done["notices"] == ["OpenCode asks permission for bash: rm -rf / — denied by policy"]


async def test_ask_surfaces_the_request_and_respond_to_task_answers_it() -> None:
    async with in_memory_gateway(permission_policy="ask") as gw, gw.mcp() as c:
        gw.fake.queue(Ask(metadata={"filepath": "/outside/out.txt"}), Reply("allowed"))
        waiting = data(await c.call_tool("run_coding_task", {"prompt": "x"}))
        assert waiting["status"] == "waiting_for_input" and "respond_to_task" in waiting["next_step"]
        (request,) = waiting["pending"]
        assert request["kind"] == "permission" and request["command"] == "/outside/out.txt"
        assert request["description"] == "OpenCode asks permission for external_directory: /outside/out.txt"
        task = {"task_id": waiting["task_id"], "request_id": request["id"]}
        wrong = await c.call_tool("respond_to_task", {**task, "answers": [["yes"]]})
        unknown = await c.call_tool("respond_to_task", {**task, "request_id": "per_nope", "reply": "once"})
        answered = data(await c.call_tool("respond_to_task", {**task, "reply": "once"}))
        twice = await c.call_tool("respond_to_task", {**task, "reply": "once"})
        done = data(await c.call_tool("get_task_status", {"task_id": waiting["task_id"], "wait_seconds": 5}))
    assert wrong.is_error and "is a permission: reply must be one of once, always, reject" in error_text(wrong)
    assert unknown.is_error and f"open requests: {request['id']}" in error_text(unknown)
    assert answered["answered"] is True and answered["status"] == "completed"
    assert twice.is_error and "has no open request" in error_text(twice)
    assert done["result"] == "allowed" and done["notices"] == [f"permission request {request['id']} answered: once"]


async def test_a_question_is_answered_with_labels() -> None:
    async with in_memory_gateway(permission_policy="ask") as gw, gw.mcp() as c:
        gw.fake.queue(Question(), Reply("picked"))
        waiting = data(await c.call_tool("run_coding_task", {"prompt": "x"}))
        (request,) = waiting["pending"]
        task = {"task_id": waiting["task_id"], "request_id": request["id"]}
        miscounted = await c.call_tool("respond_to_task", {**task, "answers": [["a.py"], ["b.py"]]})
        answered = data(await c.call_tool("respond_to_task", {**task, "answers": [["b.py"]]}))
    assert request["questions"] == [
        {"question": "Which file?", "header": "Which file?", "options": ["a.py", "b.py"], "multiple": False}
    ]
    assert miscounted.is_error and "asks 1 question(s)" in error_text(miscounted)
    assert answered["status"] == "completed"
    (state,) = gw.fake.tool_states(waiting["session_id"])
    assert state["output"] == 'User has answered your questions: "Which file?"="b.py"'


async def test_a_rejected_question_lets_the_agent_carry_on() -> None:
    async with in_memory_gateway(permission_policy="ask") as gw, gw.mcp() as c:
        gw.fake.queue(Question(), Reply("went on"))
        waiting = data(await c.call_tool("run_coding_task", {"prompt": "x"}))
        task = {"task_id": waiting["task_id"], "request_id": waiting["pending"][0]["id"], "reply": "reject"}
        answered = data(await c.call_tool("respond_to_task", task))
    assert answered["status"] == "completed" and not gw.fake.world.questions


async def test_an_unanswered_request_is_rejected_after_the_input_timeout() -> None:
    async with in_memory_gateway(permission_policy="ask", input_timeout_seconds=0.05) as gw, gw.mcp() as c:
        gw.fake.queue(Ask(), Reply("timed out, went on"))
        started = data(await c.call_tool("run_coding_task_async", {"prompt": "x"}))
        await gw.fake.until(lambda: not gw.fake.world.permissions)
        done = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 5}))
    assert done["result"] == "timed out, went on"
    assert "got no answer within 0.05s and was rejected" in done["notices"][0]
    (state,) = gw.fake.tool_states(done["session_id"])
    assert "INPUT_TIMEOUT_SECONDS=0.05s" in str(state["error"])


async def test_gateways_with_different_policies_leave_each_others_sessions_alone() -> None:
    fake = FakeOpenCode()
    async with in_memory_gateway(fake, permission_policy="ask") as asking, in_memory_gateway(fake) as allowing:
        fake.queue(Ask(), Reply("x"))
        async with asking.mcp() as c:
            waiting = data(await c.call_tool("run_coding_task", {"prompt": "x"}))
        async with allowing.mcp() as c:
            seen = data(await c.call_tool("get_task_status", {"task_id": waiting["task_id"]}))
    assert waiting["status"] == seen["status"] == "waiting_for_input"
    assert len(fake.world.permissions) == 1  # the allowing gateway never answered it


async def test_abort_clears_requests_opencode_keeps_listed() -> None:
    async with in_memory_gateway(permission_policy="ask") as gw, gw.mcp() as c:
        gw.fake.queue(Ask(), Reply("never"))
        waiting = data(await c.call_tool("run_coding_task", {"prompt": "x"}))
        stopped = data(await c.call_tool("abort_task", {"task_id": waiting["task_id"]}))
    assert stopped["status"] == "aborted" and not gw.fake.world.permissions


async def test_a_hold_keeps_a_task_running_past_a_short_timeout() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Hold(), Reply("x"))
        view = data(await c.call_tool("run_coding_task", {"prompt": "x", "timeout_seconds": 0.05}))
    assert view["status"] == "running" and view["completed_at"] is None


@pytest.mark.parametrize("policy", ["allow", "deny"])
async def test_a_blocking_call_waits_while_the_gateway_answers_and_retries_a_failed_answer(policy: str) -> None:
    # OpenCode fails the gateway's first answer: the request stays open for a second. The
    # caller has nothing to answer under allow or deny, so the task is running, not waiting.
    async with in_memory_gateway(permission_policy=policy) as gw, gw.mcp() as c:
        gw.fake.fail("POST /permission/{rid}/reply")
        gw.fake.queue(Ask(permission="bash", patterns=("rm -rf /",)), Reply("carried on"))
        started = data(await c.call_tool("run_coding_task_async", {"prompt": "x"}))
        await gw.fake.until(lambda: gw.fake.calls.count("POST /permission/{rid}/reply"))
        meanwhile = data(await c.call_tool("get_task_status", {"task_id": started["task_id"]}))
        done = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 10}))
        answered = await c.call_tool(
            "respond_to_task", {"task_id": started["task_id"], "request_id": "per_x", "reply": "once"}
        )
    assert meanwhile["status"] == "running" and meanwhile["pending"] == []
    assert answered.is_error and f"PERMISSION_POLICY={policy}: the gateway answers every request" in error_text(
        answered
    )
    assert done["status"] == "completed" and done["result"] == "carried on"
    assert gw.fake.calls.count("POST /permission/{rid}/reply") == 2
    denied = ["OpenCode asks permission for bash: rm -rf / — denied by policy"]
    assert done["notices"] == (denied if policy == "deny" else [])


async def test_a_request_whose_session_could_not_be_read_is_answered_after_a_second_look() -> None:
    async with in_memory_gateway(permission_policy="deny") as gw, gw.mcp() as c:
        gw.fake.queue(Ask(), Reply("carried on"))
        gw.fake.fail("GET /session/{sid}")  # the broker's read of the asking session
        done = data(await c.call_tool("run_coding_task", {"prompt": "x", "timeout_seconds": 10}))
    assert done["status"] == "completed" and done["result"] == "carried on"
    assert len(done["notices"]) == 1 and "denied by policy" in done["notices"][0]
    assert gw.fake.calls.count("GET /session/{sid}") == 2  # read again a second later, not listed


async def test_a_request_asked_during_a_gap_is_found_even_when_the_first_listing_fails() -> None:
    async with in_memory_gateway(permission_policy="deny") as gw, gw.mcp() as c:
        gw.fake.queue(Hold(), Ask(), Reply("carried on"))
        started = data(await c.call_tool("run_coding_task_async", {"prompt": "x"}))
        gw.fake.muted = True  # the request is asked while the stream is down
        gw.fake.resume(await gw.fake.held())
        gw.fake.muted = False
        gw.fake.fail("GET /permission")
        gw.hub.dispatch({"type": "gateway.resync", "properties": {}})
        done = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 10}))
    assert done["status"] == "completed" and done["result"] == "carried on"
    assert gw.fake.calls.count("GET /permission") == 2  # listed again a second later


def settled(kind: str, outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("ocgw_permission_requests_total", {"kind": kind, "outcome": outcome}) or 0


@pytest.mark.parametrize(
    ("policy", "answer", "outcome"),
    [("allow", None, "allowed"), ("deny", None, "denied"), ("ask", "once", "answered"), ("ask", None, "expired")],
)
async def test_each_settled_request_is_counted_once_by_how_it_ended(
    policy: str, answer: str | None, outcome: str
) -> None:
    fake = FakeOpenCode()
    before = {o: settled("permission", o) for o in ("allowed", "denied", "answered", "expired")}
    # two replicas of one policy both see the request; the one OpenCode took counts it
    async with (
        in_memory_gateway(fake, permission_policy=policy, input_timeout_seconds=0.2) as gw,
        in_memory_gateway(fake, permission_policy=policy, input_timeout_seconds=0.2),
        gw.mcp() as c,
    ):
        fake.queue(Ask(), Reply("went on"))
        started = data(await c.call_tool("run_coding_task_async", {"prompt": "x"}))
        if answer:
            waiting = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 5}))
            request = {"task_id": started["task_id"], "request_id": waiting["pending"][0]["id"], "reply": answer}
            await c.call_tool("respond_to_task", request)
        await fake.until(lambda: not fake.world.permissions)
        done = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 5}))
    assert done["status"] == "completed"
    after = {o: settled("permission", o) - before[o] for o in before}
    assert after == {o: (1 if o == outcome else 0) for o in before}


async def test_a_request_whose_session_stays_unreadable_is_given_up_after_the_input_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with in_memory_gateway(permission_policy="deny", input_timeout_seconds=1.5) as gw, gw.mcp() as c:
        gw.fake.queue(Hold(), Ask(), Reply("x"))
        await c.call_tool("run_coding_task_async", {"prompt": "x"})
        gw.fake.fail("GET /session/{sid}", times=1000)
        gw.fake.resume(await gw.fake.held())
        await gw.fake.until(lambda: "gave up on permission" in caplog.text, timeout=10)
        tries = gw.fake.calls.count("GET /session/{sid}")
        await anyio.sleep(2.5)  # past two more retry seconds: no more reads
    assert tries >= 2 and gw.fake.calls.count("GET /session/{sid}") == tries
