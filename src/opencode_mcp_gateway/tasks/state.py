"""The turn-state rules: what a task's status is, given what OpenCode reports.

Pure functions over OpenCode's own records (messages, the session's busy/retry entry and
the open permission/question requests), so any gateway process derives the same answer.

A task is one turn: the user message the gateway submitted and the assistant messages
whose `parentID` is that message. The rules (opencode 1.18.33):

* completed: the turn's last assistant message is completed, its `finish` is not
  `tool-calls` (or it carries the `structured` answer to an output format, which ends a
  turn with the StructuredOutput tool call), and the session is not busy or retrying with
  this turn.
* aborted: the last assistant message carries `MessageAbortedError`.
* failed: any other error on it (the provider's message is kept), or the run stopped
  without an answer (OpenCode restarted or crashed mid-turn).
* waiting_for_input: still running, with a permission or question request open.
* running: everything else, including a retrying provider (reported with the attempt).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..opencode import Message, MessageInfo
from . import structured
from .structured import FAILED_NAME as STRUCTURED_ERROR

Status = Literal["running", "completed", "failed", "aborted", "waiting_for_input"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "aborted"})
ABORTED_ERROR = "MessageAbortedError"
# How long a submitted turn may show no assistant message on an idle session before we
# call it lost: OpenCode needs ~0.6 s (up to ~3 s on a cold instance) to mark it busy.
START_GRACE_MS = 30_000

INTERRUPTED = (
    "OpenCode stopped while this task was running (it was restarted or crashed), so the "
    "turn never finished. The work done so far is kept: continue it with run_coding_task "
    "and this task_id, or start a new task."
)
NEVER_STARTED = (
    "OpenCode accepted this task but never started it (it was restarted, or the agent or "
    "model failed to load). Submit it again."
)
STOPPED_AFTER_TOOL = "OpenCode ended the run after a tool step without a final answer"


@dataclass
class TurnState:
    status: Status
    result: str | None = None
    error: str | None = None
    error_name: str | None = None
    retry: dict[str, Any] | None = None
    created_ms: int | None = None
    completed_ms: int | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    cost: float = 0.0
    agent: str | None = None
    model: str | None = None
    steps: int = 0
    structured: Any = None  # the answer to the turn's output format, as the model produced it
    touched_files: bool = False  # a step recorded a `patch` part: worth asking for the diff
    suspect_interrupted: bool = False  # re-read once before trusting a "failed: interrupted"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def find_user_message(messages: list[Message], message_id: str | None) -> Message | None:
    """The turn's user message; with no id, the newest user message of the session."""
    users = [m for m in messages if m.info.role == "user"]
    if message_id is None:
        return users[-1] if users else None
    return next((m for m in users if m.info.id == message_id), None)


def turn_messages(messages: list[Message], user_id: str) -> list[Message]:
    return [m for m in messages if m.info.role == "assistant" and m.info.parentID == user_id]


def final_text(turn: list[Message]) -> str | None:
    for message in reversed(turn):
        texts = [p.text for p in message.parts if p.type == "text" and not p.synthetic and p.text]
        if texts:
            return "\n".join(texts).strip()
    return None


def error_text(error: dict[str, Any]) -> str:
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    message = (data or {}).get("message") or error.get("message") or error.get("name") or "unknown error"
    status = (data or {}).get("statusCode")
    return f"{message} (HTTP {status} from the model provider)" if status else str(message)


def message_figures(info: MessageInfo) -> tuple[dict[str, int], float]:
    """Token counts by kind and the cost of one assistant message."""
    tokens = info.tokens
    counts = {
        "input": tokens.input,
        "output": tokens.output,
        "reasoning": tokens.reasoning,
        "cache_read": tokens.cache.read,
        "cache_write": tokens.cache.write,
    }
    return counts, info.cost


def _sum_tokens(turn: list[Message]) -> tuple[dict[str, int], float]:
    totals = dict.fromkeys(("input", "output", "reasoning", "cache_read", "cache_write"), 0)
    cost = 0.0
    for message in turn:
        counts, each = message_figures(message.info)
        for kind, n in counts.items():
            totals[kind] += n
        cost += each
    return totals, cost


def derive(
    messages: list[Message],
    user_id: str,
    session_status: dict[str, Any] | None,
    *,
    now_ms: int,
    session_error: dict[str, Any] | None = None,
) -> TurnState:
    """The task's state. `session_status` is this session's entry of /session/status
    (None when idle); `session_error` the last `session.error` seen for this turn."""
    user = find_user_message(messages, user_id)
    turn = turn_messages(messages, user_id)
    tokens, cost = _sum_tokens(turn)
    model = user.info.model if user else None
    state = TurnState(
        status="running",
        created_ms=(user.info.time.created or None) if user else None,
        tokens=tokens,
        cost=cost,
        agent=user.info.agent if user else None,
        model=f"{model.providerID}/{model.modelID}" if model and model.providerID else None,
        steps=len(turn),
        touched_files=any(p.type == "patch" for m in turn for p in m.parts),
    )
    kind = (session_status or {}).get("type")
    busy = kind in ("busy", "retry")
    later_turn = any(m.info.role == "user" and m.info.id > user_id for m in messages)
    if kind == "retry" and not later_turn:
        state.retry = {
            "attempt": session_status.get("attempt") if session_status else None,
            "message": session_status.get("message") if session_status else None,
            "next_retry_ms": session_status.get("next") if session_status else None,
        }

    last = turn[-1].info if turn else None
    if last is None:
        if session_error is not None:
            _fail(state, session_error)
        elif not busy and not later_turn and state.created_ms and now_ms - state.created_ms > START_GRACE_MS:
            state.status, state.error = "failed", NEVER_STARTED
    elif last.error:
        _fail(state, last.error)
        state.completed_ms = last.time.completed
    elif last.time.completed:
        own_run_active = busy and not later_turn
        if last.finish not in (None, "tool-calls") or last.structured is not None:
            if not own_run_active:
                state.status = "completed"
                state.result = final_text(turn)
                state.structured = last.structured
                state.completed_ms = last.time.completed
        elif not own_run_active:
            state.status, state.error = "failed", STOPPED_AFTER_TOOL + _last_tool_error(turn)
            state.suspect_interrupted = True
    elif not (busy and not later_turn):
        state.status, state.error = "failed", INTERRUPTED
        state.suspect_interrupted = True

    if state.status == "running":
        state.result = final_text(turn)  # what has streamed so far
    return state


def may_ask(state: TurnState) -> bool:
    """Whether the turn can have an open permission or question: only a running turn
    whose model has started a step (requests come from its tool calls)."""
    return state.status == "running" and state.steps > 0


def await_input(state: TurnState, pending: int) -> None:
    """A running turn with open requests waits for input (an ended one ignores leftovers)."""
    if pending and may_ask(state):
        state.status = "waiting_for_input"


def _fail(state: TurnState, error: dict[str, Any]) -> None:
    state.error_name = str(error.get("name") or "")
    if state.error_name == ABORTED_ERROR:
        state.status, state.error = "aborted", "The task was aborted."
    elif state.error_name == STRUCTURED_ERROR:
        state.status, state.error = "failed", structured.model_failed(error_text(error))
    else:
        state.status, state.error = "failed", error_text(error)


def _last_tool_error(turn: list[Message]) -> str:
    for message in reversed(turn):
        for part in reversed(message.parts):
            if part.type == "tool" and part.state is not None and part.state.status == "error":
                return f": {part.tool} failed with {(part.state.error or '')[:300]!r}"
    return "."
