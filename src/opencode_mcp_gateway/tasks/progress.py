"""Short, human-readable progress lines made from OpenCode's events (pure logic)."""

from __future__ import annotations

import os
from typing import Any

MAX_LEN = 180  # Claude Code cuts progress messages at about 200 characters


def _clip(text: str, limit: int = MAX_LEN) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_target(tool: str, args: dict[str, Any]) -> str:
    for key in ("filePath", "path"):
        if args.get(key):
            return os.path.basename(str(args[key])) or str(args[key])
    if args.get("command"):
        return f"`{_clip(str(args['command']), 60)}`"
    for key in ("pattern", "url", "description", "subagent_type"):
        if args.get(key):
            return _clip(str(args[key]), 60)
    return ""


def elapsed_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ProgressNarrator:
    """Turns a session's events into progress lines; each meaningful step is said once."""

    def __init__(self, task_id: str = "") -> None:
        self.tool_calls = 0
        self.steps = 0
        self._said: set[tuple[str, str]] = set()
        # The first line names the task, so a client that gives up waiting can still find it.
        self.last_line = f"OpenCode task {task_id} started" if task_id else "OpenCode task started"

    def feed(self, event: dict[str, Any]) -> str | None:
        line = self._line(event)
        if line:
            self.last_line = _clip(line)
            return self.last_line
        return None

    def keepalive(self, elapsed: float) -> str:
        return _clip(f"Still working ({elapsed_text(elapsed)}, {self.tool_calls} tool calls). Last: {self.last_line}")

    def _once(self, key: str, kind: str) -> bool:
        if (key, kind) in self._said:
            return False
        self._said.add((key, kind))
        return True

    def _line(self, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        props = event.get("properties") or {}
        if kind == "message.part.updated":
            return self._part(props.get("part") or {})
        if kind == "session.status":
            status = props.get("status") or {}
            if status.get("type") == "retry":
                return f"Model provider error, retry attempt {status.get('attempt')}: {status.get('message', '')}"
        if kind == "todo.updated":
            return _todo_line(props.get("todos") or [])
        if kind == "permission.asked":
            what = props.get("permission", "a tool")
            patterns = ", ".join(props.get("patterns") or [])
            return f"Waiting for permission: {what} {patterns}".strip()
        if kind == "question.asked":
            questions = props.get("questions") or [{}]
            return f"Waiting for an answer: {questions[0].get('question', '')}"
        return None

    def _part(self, part: dict[str, Any]) -> str | None:
        if part.get("type") == "step-start" and self._once(str(part.get("id")), "step"):
            self.steps += 1
            return f"Step {self.steps}: model is working"
        if part.get("type") != "tool":
            return None
        state = part.get("state") or {}
        status = state.get("status")
        call = str(part.get("callID") or part.get("id"))
        tool = str(part.get("tool"))
        args = state.get("input") or {}
        if status == "running" and self._once(call, "running"):
            self.tool_calls += 1
            target = tool_target(tool, args)
            return f"Running {tool}" + (f" on {target}" if target else "")
        if status == "error" and self._once(call, "error"):
            return f"{tool} failed: {state.get('error', '')}"
        if status == "completed" and tool == "todowrite" and self._once(call, "done"):
            return _todo_line(args.get("todos") or [])
        return None


def _todo_line(todos: list[dict[str, Any]]) -> str | None:
    if not todos:
        return None
    done = sum(1 for t in todos if t.get("status") == "completed")
    active = next((t.get("content") for t in todos if t.get("status") == "in_progress"), None)
    return f"Todos {done}/{len(todos)} done" + (f"; now: {active}" if active else "")
