from __future__ import annotations

from typing import Any

from opencode_mcp_gateway.tasks.progress import MAX_LEN, ProgressNarrator


def tool_event(call: str, tool: str, status: str, args: dict[str, Any]) -> dict[str, Any]:
    part = {"type": "tool", "tool": tool, "callID": call, "state": {"status": status, "input": args}}
    return {"type": "message.part.updated", "properties": {"part": part}}


def test_tool_steps_are_said_once_with_their_target() -> None:
    n = ProgressNarrator()
    assert n.feed(tool_event("c1", "edit", "pending", {})) is None
    assert n.feed(tool_event("c1", "edit", "running", {"filePath": "/w/src/calc.py"})) == "Running edit on calc.py"
    assert n.feed(tool_event("c1", "edit", "running", {"filePath": "/w/src/calc.py"})) is None
    assert n.feed(tool_event("c2", "bash", "running", {"command": "pytest -q"})) == "Running bash on `pytest -q`"
    assert n.tool_calls == 2


def test_todos_retries_and_requests() -> None:
    n = ProgressNarrator()
    todos = [
        {"content": "a", "status": "completed"},
        {"content": "b", "status": "in_progress"},
        {"content": "c", "status": "pending"},
    ]
    assert n.feed({"type": "todo.updated", "properties": {"todos": todos}}) == "Todos 1/3 done; now: b"
    retry = {"type": "session.status", "properties": {"status": {"type": "retry", "attempt": 2, "message": "503"}}}
    assert n.feed(retry) == "Model provider error, retry attempt 2: 503"
    asked = {"type": "permission.asked", "properties": {"permission": "bash", "patterns": ["rm -rf x"]}}
    assert n.feed(asked) == "Waiting for permission: bash rm -rf x"


def test_lines_stay_short() -> None:
    n = ProgressNarrator()
    line = n.feed(tool_event("c1", "bash", "running", {"command": "x" * 1000}))
    assert line is not None and len(line) <= MAX_LEN
    assert len(n.keepalive(754)) <= MAX_LEN and "12m34s" in n.keepalive(754)
