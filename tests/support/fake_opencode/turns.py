"""The fake's sessions, messages and requests, and how a scripted turn changes them.

Every change is announced on the event stream as 1.18.33 does (`message.updated`,
`message.part.updated`, `session.status`, `session.idle`, `session.error`,
`permission.asked`/`replied`, `question.asked`/`replied`/`rejected`).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .steps import Ask, Crash, Fail, Hold, Question, Reply, Retry, SessionError, Step, Structured, Tool

Json = dict[str, Any]
Emit = Callable[[str, Json, str | None], None]
_ids = itertools.count(1)


_last = [0]


def new_id(prefix: str) -> str:
    """Ascending like OpenCode's: the creation millisecond (times 4096, modulo 2^48) comes first,
    so a message id sorts after the gateway's id of the user message it answers."""
    _last[0] = max(_last[0] + 1, int(time.time() * 1000) * 0x1000 + 1)
    return f"{prefix}_{_last[0] & ((1 << 48) - 1):012x}FakeOpenCode"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Turn:
    session_id: str
    user_id: str
    steps: deque[Step]
    message: Json | None = None  # the assistant message being written
    tool_part: Json | None = None  # the tool call waiting for a reply
    waiting: str | None = None  # the request id (or "hold") the turn waits for
    directory: str | None = None


@dataclass
class World:
    """What OpenCode keeps; `emit` announces each change on the event stream."""

    emit: Emit
    sessions: dict[str, Json] = field(default_factory=dict)
    messages: dict[str, list[Json]] = field(default_factory=dict)
    statuses: dict[str, Json] = field(default_factory=dict)
    permissions: dict[str, Json] = field(default_factory=dict)
    questions: dict[str, Json] = field(default_factory=dict)
    diffs: dict[str, list[Json]] = field(default_factory=dict)  # by user message id
    turns: dict[str, Turn] = field(default_factory=dict)
    queued: dict[str, deque[Turn]] = field(default_factory=dict)

    # -- turns ---------------------------------------------------------------------------
    def start(self, turn: Turn) -> None:
        if turn.session_id in self.turns:  # OpenCode queues a prompt sent while busy
            self.queued.setdefault(turn.session_id, deque()).append(turn)
            return
        self.turns[turn.session_id] = turn
        self._status(turn, {"type": "busy"})
        self.advance(turn)

    def advance(self, turn: Turn) -> None:
        turn.waiting = None
        while turn.steps and turn.waiting is None and self.turns.get(turn.session_id) is turn:
            self._play(turn, turn.steps.popleft())
        if turn.waiting is None and self.turns.get(turn.session_id) is turn:
            self.end(turn)

    def end(self, turn: Turn) -> None:
        self.turns.pop(turn.session_id, None)
        self.statuses.pop(turn.session_id, None)
        self._status(turn, {"type": "idle"})
        self.emit("session.idle", {"sessionID": turn.session_id}, turn.directory)
        waiting = self.queued.get(turn.session_id)
        if waiting:
            self.start(waiting.popleft())

    def abort(self, session_id: str) -> None:
        turn = self.turns.get(session_id)
        if turn is None:
            return
        message = turn.message if turn.message and not _completed(turn.message) else self._assistant(turn)
        if turn.tool_part is not None:
            self._tool_state(turn, status="error", error="Tool execution aborted")
        error = {"name": "MessageAbortedError", "data": {"message": "Aborted"}}
        message["info"]["error"] = error
        self._complete(turn, message, finish=None)
        self.emit("session.error", {"sessionID": session_id, "error": error}, turn.directory)
        turn.steps.clear()
        self.queued.pop(session_id, None)
        self.end(turn)

    # -- steps ---------------------------------------------------------------------------
    def _play(self, turn: Turn, step: Step) -> None:
        if isinstance(step, Reply):
            message = self._assistant(turn, tokens=step.tokens, cost=step.cost)
            self._part(turn, message, {"type": "text", "text": step.text})
            self._complete(turn, message, finish="stop")
            turn.steps.clear()
        elif isinstance(step, Tool):
            self._tool_call(turn, step.tool, step.input)
            if step.error is not None:
                self._tool_state(turn, status="error", error=step.error)
            else:
                self._tool_state(turn, status="completed", output=step.output)
            if step.files:
                self._record_diff(turn, step.files)
            self._finish_tool_step(turn)
        elif isinstance(step, Structured):
            self._tool_call(turn, "StructuredOutput", step.value)
            self._tool_state(turn, status="completed", output="Structured output captured successfully.")
            assert turn.message is not None
            turn.message["info"]["structured"] = step.value
            self._finish_tool_step(turn)
            turn.steps.clear()
        elif isinstance(step, Ask):
            self._tool_call(turn, step.tool, {"filePath": step.patterns[0]})
            request: Json = {
                "id": new_id("per"),
                "sessionID": turn.session_id,
                "permission": step.permission,
                "patterns": list(step.patterns),
                "metadata": dict(step.metadata),
                "always": [f"{p}" for p in step.patterns],
                "tool": {"messageID": _info(turn.message)["id"], "callID": (turn.tool_part or {}).get("callID")},
            }
            self.permissions[request["id"]] = request
            turn.waiting = request["id"]
            self.emit("permission.asked", request, turn.directory)
        elif isinstance(step, Question):
            asked = [
                {
                    "question": q,
                    "header": q[:30],
                    "options": [{"label": o, "description": o} for o in opts],
                    "multiple": m,
                }
                for q, opts, m in step.questions
            ]
            self._tool_call(turn, "question", {"questions": asked})
            request = {"id": new_id("que"), "sessionID": turn.session_id, "questions": asked, "tool": {}}
            self.questions[request["id"]] = request
            turn.waiting = request["id"]
            self.emit("question.asked", request, turn.directory)
        elif isinstance(step, Fail):
            message = self._assistant(turn)
            data: Json = {"message": step.message, "isRetryable": False}
            if step.status_code is not None:
                data["statusCode"] = step.status_code
            error = {"name": step.name, "data": data}
            message["info"]["error"] = error
            self._complete(turn, message, finish=None)
            self.emit("session.error", {"sessionID": turn.session_id, "error": error}, turn.directory)
            turn.steps.clear()
        elif isinstance(step, SessionError):
            error = {"name": step.name, "data": {"message": step.message}}
            self.emit("session.error", {"sessionID": turn.session_id, "error": error}, turn.directory)
            turn.steps.clear()
        elif isinstance(step, Retry):
            status = {"type": "retry", "attempt": step.attempt, "message": step.message, "next": now_ms() + 2000}
            self._status(turn, status)
        elif isinstance(step, Hold):
            turn.waiting = "hold"
        elif isinstance(step, Crash):
            self._assistant(turn)  # never completed
            turn.steps.clear()

    # -- replies -------------------------------------------------------------------------
    def answer(self, request_id: str, *, allow: bool, output: str, error: str, stop: bool = False) -> None:
        """A request was answered: the waiting tool call ends, and the turn goes on (or stops)."""
        turn = next((t for t in self.turns.values() if t.waiting == request_id), None)
        if turn is None:
            return  # stale (the turn was aborted): answering only removes it
        if allow:
            self._tool_state(turn, status="completed", output=output)
        else:
            self._tool_state(turn, status="error", error=error)
        self._finish_tool_step(turn)
        if stop:
            turn.steps.clear()
        self.advance(turn)

    # -- records -------------------------------------------------------------------------
    def _assistant(self, turn: Turn, tokens: tuple[int, int] = (50, 10), cost: float = 0.0) -> Json:
        user = _info(self.find(turn.session_id, turn.user_id))
        info: Json = {
            "id": new_id("msg"),
            "sessionID": turn.session_id,
            "parentID": turn.user_id,
            "role": "assistant",
            "agent": user.get("agent", "build"),
            "mode": user.get("agent", "build"),
            "providerID": user["model"]["providerID"],
            "modelID": user["model"]["modelID"],
            "path": {"cwd": turn.directory, "root": turn.directory},
            "time": {"created": now_ms()},
            "tokens": {"input": tokens[0], "output": tokens[1], "reasoning": 0, "cache": {"read": 0, "write": 0}},
            "cost": cost,
        }
        message = {"info": info, "parts": []}
        self.messages[turn.session_id].append(message)
        turn.message = message
        self.emit("message.updated", {"info": info}, turn.directory)
        self._part(turn, message, {"type": "step-start"})
        return message

    def _part(self, turn: Turn, message: Json, part: Json) -> Json:
        part = {"id": new_id("prt"), "sessionID": turn.session_id, "messageID": message["info"]["id"], **part}
        message["parts"].append(part)
        self.emit("message.part.updated", {"part": part}, turn.directory)
        return part

    def _tool_call(self, turn: Turn, tool: str, args: Json) -> None:
        message = self._assistant(turn)
        state = {"status": "pending", "input": args}
        turn.tool_part = self._part(
            turn, message, {"type": "tool", "tool": tool, "callID": new_id("call"), "state": state}
        )
        self._tool_state(turn, status="running")

    def _tool_state(self, turn: Turn, *, status: str, output: str | None = None, error: str | None = None) -> None:
        part = turn.tool_part
        assert part is not None
        part["state"] = {**part["state"], "status": status, "title": part["tool"]}
        if output is not None:
            part["state"]["output"] = output
        if error is not None:
            part["state"]["error"] = error
        self.emit("message.part.updated", {"part": part}, turn.directory)

    def _finish_tool_step(self, turn: Turn) -> None:
        assert turn.message is not None
        turn.tool_part = None
        self._complete(turn, turn.message, finish="tool-calls")

    def _complete(self, turn: Turn, message: Json, *, finish: str | None) -> None:
        self._part(turn, message, {"type": "step-finish", "reason": finish or "error"})
        message["info"]["time"]["completed"] = now_ms()
        if finish:
            message["info"]["finish"] = finish
        self.emit("message.updated", {"info": message["info"]}, turn.directory)

    def _record_diff(self, turn: Turn, files: dict[str, str]) -> None:
        assert turn.message is not None
        self._part(turn, turn.message, {"type": "patch", "hash": new_id("snap"), "files": sorted(files)})
        changes = self.diffs.setdefault(turn.user_id, [])
        for path, patch in files.items():
            lines = patch.splitlines()
            changes.append(
                {
                    "file": path,
                    "patch": patch,
                    "additions": sum(1 for x in lines if x.startswith("+") and not x.startswith("+++")),
                    "deletions": sum(1 for x in lines if x.startswith("-") and not x.startswith("---")),
                    "status": "modified",
                }
            )

    def _status(self, turn: Turn, status: Json) -> None:
        if status["type"] != "idle":
            self.statuses[turn.session_id] = status
        self.emit("session.status", {"sessionID": turn.session_id, "status": status}, turn.directory)

    def find(self, session_id: str, message_id: str) -> Json:
        return next(m for m in self.messages[session_id] if m["info"]["id"] == message_id)


def _info(message: Json | None) -> Json:
    assert message is not None
    info: Json = message["info"]
    return info


def _completed(message: Json) -> bool:
    return bool(message["info"]["time"].get("completed"))
