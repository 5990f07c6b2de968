"""The turn-state rules, on message records shaped like opencode 1.18.33's."""

from __future__ import annotations

from typing import Any

from opencode_mcp_gateway.opencode import Message
from opencode_mcp_gateway.tasks.state import INTERRUPTED, NEVER_STARTED, START_GRACE_MS, await_input, derive

USER = "msg_100"
NOW = 10_000_000


def user(mid: str = USER, created: int = NOW - 1000) -> Message:
    return Message.model_validate(
        {
            "info": {
                "id": mid,
                "role": "user",
                "time": {"created": created},
                "agent": "build",
                "model": {"providerID": "p", "modelID": "m"},
            },
            "parts": [{"type": "text", "text": "do it"}],
        }
    )


def assistant(
    mid: str,
    *,
    parent: str = USER,
    finish: str | None = "stop",
    completed: bool = True,
    error: dict[str, Any] | None = None,
    text: str = "",
) -> Message:
    info: dict[str, Any] = {
        "id": mid,
        "role": "assistant",
        "parentID": parent,
        "time": {"created": NOW - 500},
        "tokens": {"input": 10, "output": 5, "reasoning": 1, "cache": {"read": 2, "write": 3}},
        "cost": 0.25,
    }
    if finish:
        info["finish"] = finish
    if completed:
        info["time"]["completed"] = NOW - 100
    if error:
        info["error"] = error
    parts = [{"type": "text", "text": text}] if text else []
    return Message.model_validate({"info": info, "parts": parts})


BUSY = {"type": "busy"}


def test_completed_when_last_message_done_and_session_idle() -> None:
    msgs = [user(), assistant("msg_101", finish="tool-calls"), assistant("msg_102", text="All done")]
    state = derive(msgs, USER, None, now_ms=NOW)
    assert state.status == "completed" and state.result == "All done"
    assert state.tokens == {"input": 20, "output": 10, "reasoning": 2, "cache_read": 4, "cache_write": 6}
    assert state.cost == 0.5 and state.model == "p/m" and state.agent == "build"


def test_not_completed_while_session_still_busy_with_this_turn() -> None:
    msgs = [user(), assistant("msg_101", text="done")]
    assert derive(msgs, USER, BUSY, now_ms=NOW).status == "running"


def test_tool_calls_finish_is_not_the_end() -> None:
    msgs = [user(), assistant("msg_101", finish="tool-calls")]
    assert derive(msgs, USER, BUSY, now_ms=NOW).status == "running"


def test_aborted_and_failed_are_told_apart() -> None:
    aborted = [user(), assistant("msg_101", error={"name": "MessageAbortedError", "data": {"message": "Aborted"}})]
    assert derive(aborted, USER, None, now_ms=NOW).status == "aborted"
    api = {"name": "APIError", "data": {"message": "bad api key", "statusCode": 401}}
    failed = derive([user(), assistant("msg_101", error=api)], USER, None, now_ms=NOW)
    assert failed.status == "failed" and failed.error == "bad api key (HTTP 401 from the model provider)"


def test_retry_is_running_with_the_attempt() -> None:
    retry = {"type": "retry", "attempt": 2, "message": "overloaded", "next": NOW + 2000}
    state = derive([user(), assistant("msg_101", completed=False, finish=None)], USER, retry, now_ms=NOW)
    assert state.status == "running" and state.retry == {
        "attempt": 2,
        "message": "overloaded",
        "next_retry_ms": NOW + 2000,
    }


def test_pending_request_means_waiting_for_input() -> None:
    msgs = [user(), assistant("msg_101", completed=False, finish=None)]
    state = derive(msgs, USER, BUSY, now_ms=NOW)
    await_input(state, pending=1)
    assert state.status == "waiting_for_input"
    # a finished task stays finished even if a stale request is still listed
    state = derive([user(), assistant("msg_101")], USER, None, now_ms=NOW)
    await_input(state, pending=1)
    assert state.status == "completed"


def test_fresh_task_without_assistant_message_is_running_even_if_idle() -> None:
    # OpenCode shows a new prompt's session as idle for ~0.6 s before it turns busy.
    assert derive([user()], USER, None, now_ms=NOW).status == "running"


def test_task_never_started_after_the_grace_period() -> None:
    state = derive([user(created=NOW - START_GRACE_MS - 1)], USER, None, now_ms=NOW)
    assert state.status == "failed" and state.error == NEVER_STARTED


def test_session_error_without_assistant_message_fails_the_task() -> None:
    error = {"name": "UnknownError", "data": {"message": "Model not found: x/y"}}
    state = derive([user()], USER, None, now_ms=NOW, session_error=error)
    assert state.status == "failed" and state.error == "Model not found: x/y"


def test_incomplete_message_on_idle_session_is_an_interrupted_run() -> None:
    state = derive([user(), assistant("msg_101", completed=False, finish=None)], USER, None, now_ms=NOW)
    assert state.status == "failed" and state.error == INTERRUPTED and state.suspect_interrupted


def test_a_queued_later_turn_does_not_keep_an_ended_turn_running() -> None:
    msgs = [
        user(),
        assistant("msg_101", text="first done"),
        user("msg_200"),
        assistant("msg_201", parent="msg_200", completed=False, finish=None),
    ]
    assert derive(msgs, USER, BUSY, now_ms=NOW).status == "completed"
    assert derive(msgs, "msg_200", BUSY, now_ms=NOW).status == "running"


def test_turn_only_counts_its_own_messages() -> None:
    msgs = [user("msg_050"), assistant("msg_051", parent="msg_050", text="old answer"), user()]
    state = derive(msgs, USER, BUSY, now_ms=NOW)
    assert state.status == "running" and state.result is None and state.steps == 0
