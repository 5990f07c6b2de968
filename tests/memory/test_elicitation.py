"""PERMISSION_POLICY=ask during a blocking call: elicitation mid-call (protocol 2025-11-25) and
input-required results (2026-07-28), failing closed on anything but a valid acceptance."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import ElicitRequestParams, ElicitResult, InputRequiredResult

from tests.support.client import data
from tests.support.fake_opencode import Ask, Question, Reply
from tests.support.in_memory import LEGACY, MODERN, in_memory_gateway

pytestmark = pytest.mark.anyio
ERAS = pytest.mark.parametrize("mode", [LEGACY, MODERN], ids=["2025-11-25", "2026-07-28"])


class Answers:
    """An elicitation callback that answers with `replies` in turn and records what it was asked."""

    def __init__(self, *replies: ElicitResult) -> None:
        self.replies = list(replies)
        self.asked: list[ElicitRequestParams] = []

    async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        self.asked.append(params)
        return self.replies.pop(0)

    @property
    def messages(self) -> list[str]:
        return [str(getattr(p, "message", "")) for p in self.asked]


def accept(**content: Any) -> ElicitResult:
    return ElicitResult(action="accept", content=content)


@ERAS
async def test_an_accepted_permission_lets_the_task_finish(mode: str) -> None:
    answers = Answers(accept(decision="once"))
    async with in_memory_gateway(permission_policy="ask") as gw, gw.mcp(mode, elicitation_callback=answers) as c:
        assert c.protocol_version == ("2025-11-25" if mode == LEGACY else MODERN)
        gw.fake.queue(Ask(permission="bash", patterns=("make test",), metadata={"command": "make test"}), Reply("ran"))
        done = data(await c.call_tool("run_coding_task", {"prompt": "x"}))
    assert done["status"] == "completed" and done["result"] == "ran"
    assert answers.messages == ["OpenCode asks permission for bash: make test"]
    assert [s["status"] for s in gw.fake.tool_states(done["session_id"])] == ["completed"]


@ERAS
@pytest.mark.parametrize(
    "reply",
    [ElicitResult(action="decline"), ElicitResult(action="cancel"), accept(decision="sure")],
    ids=["decline", "cancel", "malformed"],
)
async def test_anything_but_a_valid_acceptance_rejects(mode: str, reply: ElicitResult) -> None:
    async with (
        in_memory_gateway(permission_policy="ask") as gw,
        gw.mcp(mode, elicitation_callback=Answers(reply)) as c,
    ):
        gw.fake.queue(Ask(), Reply("went on without it"))
        done = data(await c.call_tool("run_coding_task", {"prompt": "x"}))
    assert done["status"] == "completed" and done["result"] == "went on without it"
    (state,) = gw.fake.tool_states(done["session_id"])
    assert state["status"] == "error" and "The user rejected this request" in state["error"]


@ERAS
async def test_questions_are_asked_as_forms(mode: str) -> None:
    questions = (("Which file?", ("a.py", "b.py"), False), ("Which checks?", ("lint", "types"), True))
    answers = Answers(accept(answer_1="b.py", answer_2="lint, types"))
    async with in_memory_gateway(permission_policy="ask") as gw, gw.mcp(mode, elicitation_callback=answers) as c:
        gw.fake.queue(Question(questions), Reply("answered"))
        done = data(await c.call_tool("run_coding_task", {"prompt": "x"}))
    assert done["result"] == "answered"
    schema = answers.asked[0].requested_schema  # type: ignore[union-attr]
    assert schema["properties"]["answer_1"]["enum"] == ["a.py", "b.py"]
    (state,) = gw.fake.tool_states(done["session_id"])
    assert state["output"] == 'User has answered your questions: "Which file?"="b.py", "Which checks?"="lint, types"'


@ERAS
async def test_a_client_that_cannot_be_asked_gets_waiting_for_input(mode: str) -> None:
    async with in_memory_gateway(permission_policy="ask") as gw, gw.mcp(mode) as c:
        gw.fake.queue(Ask(), Reply("x"))
        waiting = data(await c.call_tool("run_coding_task", {"prompt": "x"}))
    assert waiting["status"] == "waiting_for_input" and len(gw.fake.world.permissions) == 1


async def test_a_forged_request_state_is_refused() -> None:
    """The SDK seals the state the gateway issues; anything else never reaches the tool."""
    async with in_memory_gateway(permission_policy="ask") as gw, gw.mcp(MODERN) as c:
        with pytest.raises(MCPError, match="Invalid or expired requestState"):
            await c.session.call_tool("run_coding_task", {"prompt": "x"}, request_state='{"task_id": "ses_x"}')
    assert not gw.fake.world.sessions


async def test_an_input_required_result_names_the_task_and_each_request() -> None:
    async with (
        in_memory_gateway(permission_policy="ask") as gw,
        gw.mcp(MODERN, elicitation_callback=Answers()) as c,
    ):
        gw.fake.queue(Ask(), Reply("x"))
        first = await c.session.call_tool("run_coding_task", {"prompt": "x"}, allow_input_required=True)
        assert isinstance(first, InputRequiredResult)
        (key,) = first.input_requests or {}
        request_id = next(iter(gw.fake.world.permissions))
        late = await c.call_tool(
            "respond_to_task",
            {"task_id": next(iter(gw.fake.world.sessions)), "request_id": request_id, "reply": "once"},
        )
        assert not late.is_error  # answered elsewhere meanwhile: the retry must not fail on it
        again = await c.session.call_tool(
            "run_coding_task",
            {"prompt": "x"},
            input_responses={key: accept(decision="reject")},
            request_state=first.request_state,
        )
    assert data(again)["status"] == "completed"
