"""Reading a task: resolve its id once, derive its state, and assemble what the caller sees.

A task id resolves to its session, the session's messages and the turn's user message;
everything a read reports is derived from those, the session's status and the open
permission/question requests (fetched only while the task runs, and only when its caller is
the one to answer them: under PERMISSION_POLICY allow or deny the gateway answers, and a
read that lands between OpenCode asking and the gateway answering still sees `running`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import anyio

from ..config import Settings
from ..opencode import Message, OpenCodeClient, OpenCodeNotFound, Session
from ..workspaces import Record, Workspaces
from . import bounds, shaping, structured
from .broker import PermissionBroker
from .budget import Budget, explain
from .errors import TaskError
from .ids import TaskId, seconds_since_made
from .permissions import open_requests
from .session_errors import SessionErrorLog
from .sessions import SessionStore
from .state import TurnState, await_input, derive, find_user_message, may_ask
from .views import FileChange, PendingRequest, RetryInfo, TaskView, Tokens, WorkspaceView

CONFIRM_READS = 4
CONFIRM_DELAY = 0.15
# A state read asks for the session's newest messages only: the turn of a task is at the end
# of its session unless a follow-up came after it, and re-reading a long session's whole
# history on every poll costs more with every step. Older turns take a second, whole read.
RECENT_MESSAGES = 50
# A fresh OpenCode instance (just started or restarted) stores the first prompt's user
# message up to ~1.2 s after prompt_async answered (measured): a task whose id was made this
# recently and is not there yet is looked for again rather than called unknown.
JUST_SENT_SECONDS = 5.0


@dataclass
class Turn:
    """A task id resolved: its session, the session's messages, and the turn's user message."""

    tid: TaskId  # always with its message id
    session: Session
    messages: list[Message]
    user: Message

    @property
    def created_ms(self) -> int:
        return self.user.info.time.created


class Reading(NamedTuple):
    """One read of a task: what the caller sees, the state behind it, and the task id with
    its message id (a bare session id resolved), so nobody parses `view.task_id` back."""

    view: TaskView
    state: TurnState
    tid: TaskId
    messages: list[Message]  # the session's messages the state was derived from


class TaskReader:
    def __init__(
        self,
        settings: Settings,
        client: OpenCodeClient,
        sessions: SessionStore,
        errors: SessionErrorLog,
        broker: PermissionBroker,
        workspaces: Workspaces,
    ) -> None:
        self.settings = settings
        self.client = client
        self.sessions = sessions
        self.errors = errors
        self.broker = broker
        self.workspaces = workspaces

    async def resolve(self, tid: TaskId, *, history: bool = False, known: list[Message] | None = None) -> Turn:
        """A bare session id means the session's newest task. `history`: the turn's
        messages and every earlier one (else the turn's own may be all that is read).
        `known`: the session's messages as its events told them (transcript.py), read only
        if the turn is not among them."""
        session = await self.sessions.get(tid.session_id)
        messages = known if known is not None else await self.turn_messages(tid, whole=history)
        user = find_user_message(messages, tid.message_id)
        if user is None or (user.info.unreadable and not shaping.has_record(session, user.info.id)):
            # Another replica may have sent a turn with a schema since this session was read:
            # its record names the message OpenCode cannot return.
            session = await self.sessions.refresh(tid.session_id)
            messages = await self.turn_messages(tid, whole=history)
            user = find_user_message(messages, tid.message_id)
        while user is None and tid.message_id and (seconds_since_made(tid.message_id) or 1e9) < JUST_SENT_SECONDS:
            await anyio.sleep(CONFIRM_DELAY)  # a fresh OpenCode stores a first prompt late
            messages = await self.turn_messages(tid, whole=history)
            user = find_user_message(messages, tid.message_id)
        if user is None:
            raise TaskError(f"unknown task_id {tid}: OpenCode has no such task in session {tid.session_id}")
        return Turn(tid._replace(message_id=user.info.id), session, messages, user)

    async def turn_messages(self, tid: TaskId, *, whole: bool = False) -> list[Message]:
        """Messages of the session that hold the task's turn: the newest ones when the turn
        is among them (every message of a turn comes after its user message)."""
        formatted = shaping.sent_with_format(await self.sessions.get(tid.session_id))
        if not whole:
            recent = await self.client.messages(
                tid.session_id, limit=RECENT_MESSAGES, sent_with_format=formatted, until=tid.message_id
            )
            if len(recent) < RECENT_MESSAGES or find_user_message(recent, tid.message_id) is not None:
                return recent
        return await self.client.messages(tid.session_id, sent_with_format=formatted)

    async def view(self, tid: TaskId, *, with_files: bool = True) -> TaskView:
        return (await self.read(tid, with_files=with_files)).view

    async def read(
        self, tid: TaskId, *, with_files: bool, idle: bool = False, known: list[Message] | None = None
    ) -> Reading:
        """`idle`: a `session.idle` event was the session's latest news, so its status is known.
        `known`: the session's messages as its events told them, instead of reading them."""
        turn = await self.resolve(tid, known=known)
        tid = turn.tid
        directory = turn.session.directory
        state = await self._derive(turn, idle=idle)
        if known is not None and state.suspect_interrupted:  # the events left the end untold: ask
            turn.messages = await self.turn_messages(tid)
            state = await self._derive(turn, idle=idle)
        for _ in range(CONFIRM_READS):
            if not state.suspect_interrupted:
                break
            # OpenCode marks the session idle a moment before it stores the message's
            # final error or completion: look again before calling the run interrupted.
            await anyio.sleep(CONFIRM_DELAY)
            turn.messages = await self.turn_messages(tid)
            state = await self._derive(turn)
        pending: list[PendingRequest] = []
        if may_ask(state) and not self.broker.answers_itself(turn.session.metadata):
            pending = await open_requests(self.client, tid.session_id, directory)
            await_input(state, len(pending))
        files: list[FileChange] = []
        record = Record.of(turn.session)
        if record and state.terminal:
            record = await self.workspaces.settle(tid.session_id)
        if with_files and (state.terminal or pending) and (state.touched_files or record):
            files = await self.files_changed(tid)
        view = self._assemble(tid, turn.session, state, pending, files)
        view.read_only = shaping.facts(turn.session, turn.user).read_only
        view.workspace = WorkspaceView.model_validate(asdict(record)) if record else None
        return Reading(view, state, tid, turn.messages)

    async def _derive(self, turn: Turn, *, idle: bool = False) -> TurnState:
        statuses = {} if idle else await self.client.session_status(turn.session.directory)
        state = derive(
            turn.messages,
            str(turn.tid.message_id),
            statuses.get(turn.tid.session_id),
            now_ms=int(time.time() * 1000),
            session_error=self.errors.since(turn.tid.session_id, turn.created_ms),
        )
        schema = shaping.facts(turn.session, turn.user).output_schema
        problem = structured.failure(schema, state.structured) if schema and state.status == "completed" else None
        if problem:  # OpenCode stores any object the model produced: the gateway checks it
            state.status, state.error = "failed", problem
        return state

    def _assemble(
        self,
        tid: TaskId,
        session: Session,
        state: TurnState,
        pending: list[PendingRequest],
        files: list[FileChange],
    ) -> TaskView:
        budget = Budget.of_session(session)
        explain(state, budget)
        end_ms = state.completed_ms or int(time.time() * 1000)
        retry = None
        if state.retry:
            retry = RetryInfo(
                attempt=state.retry.get("attempt"),
                message=state.retry.get("message"),
                next_retry_at=_iso(state.retry.get("next_retry_ms")),
            )
        return TaskView(
            task_id=str(tid),
            status=state.status,
            session_id=tid.session_id,
            result=state.result,
            structured_output=state.structured,
            error=state.error,
            files_changed=files,
            pending=pending,
            retry=retry,
            notices=self.broker.notices(tid.session_id),
            agent=state.agent,
            model=state.model,
            directory=session.directory,
            title=session.title,
            created_at=_iso(state.created_ms),
            completed_at=_iso(state.completed_ms),
            elapsed_seconds=round((end_ms - state.created_ms) / 1000, 3) if state.created_ms else None,
            tokens=Tokens(**state.tokens),
            cost=state.cost,
            budget=budget.as_metadata(),
            workspace=None,
        )

    # -- what the task changed ---------------------------------------------------------
    async def files_changed(self, tid: TaskId) -> list[FileChange]:
        return [bounds.file_summary(f) for f in await self.diff_files(tid)]

    async def diff_files(self, tid: TaskId) -> list[dict[str, Any]]:
        record = Record.of(await self.sessions.get(tid.session_id))
        if record:  # an isolated task: its whole change against base_commit
            return await self.workspaces.diff(record)
        try:
            return await self.client.diff(tid.session_id, str(tid.message_id))
        except OpenCodeNotFound:
            return []


def _iso(ms: int | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z") if ms else None
