"""Task operations: submit, wait, read, abort, answer. The tools are thin calls into this."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import anyio

from ..config import Settings
from ..opencode import Event, EventHub, OpenCodeClient, OpenCodeError, OpenCodeNotFound, OpenCodeUnavailable
from . import bounds
from .budget import Budget, explain
from .catalog import Catalog
from .ids import TaskId, new_message_id, parse_task_id
from .ownership import may_see, owner_to_record
from .permissions import (
    PERMISSION_REPLIES,
    PermissionBroker,
    open_requests,
    reply,
    session_metadata,
    session_rules,
)
from .progress import ProgressNarrator
from .state import TurnState, derive, find_user_message
from .tracker import TaskTracker
from .views import (
    AbortView,
    DiffView,
    FileChange,
    FileDiff,
    Message,
    MessagesView,
    PendingRequest,
    RespondView,
    RetryInfo,
    TaskView,
    Tokens,
    WorkspaceView,
)
from .workspace import WorkspaceError, check_inside_root, confirm_session_directory, resolve_directory
from .workspaces import Plan, Record, Workspaces

log = logging.getLogger(__name__)

Reporter = Callable[[str], Awaitable[None]]
# Asked about one pending request during a blocking call; returns (reply, answers) or None.
Asker = Callable[[PendingRequest], Awaitable[tuple[str, list[list[str]] | None] | None]]

# Events after which the task's state may have changed, so it is read again.
_STATE_EVENTS = frozenset(
    {
        "session.idle",
        "session.error",
        "session.deleted",
        "permission.asked",
        "permission.replied",
        "question.asked",
        "question.replied",
        "question.rejected",
        "gateway.resync",
        "gateway.disconnected",
    }
)


OUTAGE_PATIENCE = 30.0  # seconds a waiting call keeps trying while OpenCode does not answer
STATE_READ_TIMEOUT = 10.0
CONFIRM_READS = 4
CONFIRM_DELAY = 0.15


class TaskError(ValueError):
    """A call the gateway cannot carry out as asked; the message says what to fix."""


def _iso(ms: int | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z") if ms else None


def _ends_idle(batch: list[Event]) -> bool:
    """Whether the session's last status news in `batch` is that it went idle."""
    for event in reversed(batch):
        kind = str(event.get("type", ""))
        if kind == "session.idle":
            return True
        if kind.startswith("gateway."):
            return False  # a gap or reconnect: the status is unknown
        if kind == "session.status":
            return ((event.get("properties") or {}).get("status") or {}).get("type") == "idle"
    return False


def _changes_state(event: Event) -> bool:
    kind = event.get("type")
    if kind in _STATE_EVENTS:
        return True
    props = event.get("properties") or {}
    if kind == "session.status":
        return (props.get("status") or {}).get("type") != "busy"
    if kind == "message.updated":
        i = props.get("info") or {}
        return i.get("role") == "assistant" and bool(i.get("error") or (i.get("time") or {}).get("completed"))
    return False


class TaskService:
    def __init__(
        self,
        settings: Settings,
        client: OpenCodeClient,
        hub: EventHub,
        broker: PermissionBroker,
        catalog: Catalog,
        tracker: TaskTracker | None = None,
        workspaces: Workspaces | None = None,
    ) -> None:
        self.settings = settings
        self.tracker = tracker
        self.workspaces = workspaces or Workspaces(settings, client)
        self.client = client
        self.hub = hub
        self.broker = broker
        self.catalog = catalog
        self.shutting_down = False
        self._sessions: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._session_errors: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # -- background: remember session errors that come without an assistant message ---
    async def watch_session_errors(self) -> None:
        with self.hub.subscribe(None) as sub:
            while True:
                for event in await sub.next_batch(timeout=60):
                    if event.get("type") == "session.error":
                        props = event.get("properties") or {}
                        sid = props.get("sessionID")
                        if sid and isinstance(props.get("error"), dict):
                            self._session_errors[sid] = {"at": int(time.time() * 1000), **props["error"]}
                            while len(self._session_errors) > 5000:
                                self._session_errors.popitem(last=False)

    # -- submit ------------------------------------------------------------------------
    async def submit(
        self,
        *,
        prompt: str,
        agent: str | None = None,
        model: str | None = None,
        directory: str | None = None,
        title: str | None = None,
        task_id: str | None = None,
        budget: Budget | None = None,
        repository: str | None = None,
        ref: str | None = None,
        branch: str | None = None,
        push: bool = False,
        isolate: bool = False,
    ) -> TaskId:
        if not prompt or not prompt.strip():
            raise TaskError("prompt is empty: say what OpenCode should do, e.g. 'Add a docstring to calc.py'")
        plan = None
        session = None
        if task_id and (repository or ref or branch or push or isolate):
            raise TaskError(
                "a follow-up continues in its task's worktree and branch: leave repository, ref, branch, push "
                "and isolate out"
            )
        if task_id:
            earlier = parse_task_id(task_id)
            session = await self._session(earlier.session_id)
            workdir = session.get("directory")
            if not self.workspaces.owns_session(session):  # its worktree lives under WORKSPACES_DIR
                check_inside_root(str(workdir or ""), self.settings.workspace_root, shown=str(workdir))
            if directory and resolve_directory(directory, self.settings.workspace_root) != workdir:
                raise TaskError(
                    f"a follow-up runs in its task's directory ({workdir}); leave directory out or start a new task"
                )
        else:
            plan = await self.workspaces.prepare(
                repository=repository, ref=ref, branch=branch, push=push, isolate=isolate, directory=directory
            )
            workdir = plan.record.directory if plan else resolve_directory(directory, self.settings.workspace_root)
        try:
            return await self._start(prompt, agent, model, workdir, title, session, plan, budget or Budget())
        except BaseException:
            if plan:  # no task runs there: the worktree goes (the branch too, if unnamed)
                with anyio.CancelScope(shield=True):
                    await self.workspaces.discard(plan)
            raise

    async def _start(
        self,
        prompt: str,
        agent: str | None,
        model: str | None,
        workdir: str | None,
        title: str | None,
        session: dict[str, Any] | None,
        plan: Plan | None,
        budget: Budget,
    ) -> TaskId:
        """`session`: the earlier task's session for a follow-up, else None (a new session)."""
        agent = agent or self.settings.default_agent
        await self.catalog.check_agent(agent, workdir)
        chosen = model or self.settings.default_model
        provider_model = await self.catalog.check_model(chosen, workdir) if chosen else None
        message_id = new_message_id()
        if session is not None:
            session_id = session["id"]
            task = TaskId(session_id, message_id, self.client.worker)
            resumed = await self.workspaces.resume(session, str(task))
            if resumed:
                self._remember(resumed)
            await self._record_budget(resumed or session, budget)
        else:
            name = (title or prompt.strip().splitlines()[0])[:80]
            created = await self.client.create_session(
                directory=workdir,
                title=f"{self.settings.session_title_prefix}: {name}",
                permission=session_rules(self.settings.permission_policy),
                metadata=session_metadata(
                    self.settings.permission_policy,
                    owner=owner_to_record(),
                    budget=budget.as_metadata(),
                    workspace=asdict(plan.record) if plan else None,
                ),
            )
            session_id = created["id"]
            await self._confirm_workspace(created, workdir)
            task = TaskId(session_id, message_id, self.client.worker)
            if plan:
                created = await self.workspaces.adopt(plan, created, str(task))
            self._remember(created)
        await self.client.prompt_async(
            session_id, message_id=message_id, text=prompt, agent=agent, model=provider_model
        )
        if self.tracker is not None:
            self.tracker.track(task, budget)
        return task

    async def _confirm_workspace(self, created: dict[str, Any], workdir: str | None) -> None:
        """A session OpenCode placed elsewhere than decided is deleted before it can run."""
        try:
            confirm_session_directory(created.get("directory"), workdir)
        except WorkspaceError:
            log.warning(
                "session %s landed in %r, not %r: deleting it", created["id"], created.get("directory"), workdir
            )
            with contextlib.suppress(OpenCodeError):  # the refusal stands even if the delete fails
                await self.client.delete_session(created["id"])
            raise

    async def _record_budget(self, session: dict[str, Any], budget: Budget) -> None:
        """A follow-up's budget replaces the session's (a session runs one task at a time)."""
        if Budget.of_session(session) == budget:
            return
        metadata = {k: v for k, v in (session.get("metadata") or {}).items() if k != "budget"}
        if budget.as_metadata():
            metadata["budget"] = budget.as_metadata()
        self._remember(await self.client.update_session_metadata(session["id"], metadata))

    # -- read --------------------------------------------------------------------------
    async def view(self, task_id: str | TaskId, *, with_files: bool = True) -> TaskView:
        tid = parse_task_id(task_id) if isinstance(task_id, str) else task_id
        return (await self._read(tid, with_files=with_files))[0]

    async def _read(self, tid: TaskId, *, with_files: bool, idle: bool = False) -> tuple[TaskView, TurnState]:
        """`idle`: a `session.idle` event was the session's latest news, so its status is known."""
        session, messages, tid = await self._resolve(tid)
        directory = session.get("directory")
        state = await self._derive(tid, messages, directory, idle=idle)
        for _ in range(CONFIRM_READS):
            if not state.suspect_interrupted:
                break
            # OpenCode marks the session idle a moment before it stores the message's
            # final error or completion: look again before calling the run interrupted.
            await anyio.sleep(CONFIRM_DELAY)
            state = await self._derive(tid, await self.client.messages(tid.session_id), directory)
        pending: list[PendingRequest] = []
        if not state.terminal:
            pending = [PendingRequest(**p) for p in await open_requests(self.client, tid.session_id, directory)]
            if pending:
                state.status = "waiting_for_input"
        files: list[FileChange] = []
        record = Record.of(session)
        if record and state.terminal:
            record = await self.workspaces.settle(tid.session_id)
        if with_files and (state.terminal or pending) and (state.touched_files or record):
            files = await self._files_changed(tid)
        view = self._assemble(tid, session, state, pending, files)
        view.workspace = WorkspaceView.model_validate(asdict(record)) if record else None
        return view, state

    async def _resolve(self, tid: TaskId) -> tuple[dict[str, Any], list[dict[str, Any]], TaskId]:
        """The task's session, its session's messages, and the task id with its message id
        (a bare session id means the session's newest task)."""
        session = await self._session(tid.session_id)
        messages = await self.client.messages(tid.session_id)
        user = find_user_message(messages, tid.message_id)
        if user is None:
            raise TaskError(f"unknown task_id {tid}: OpenCode has no such task in session {tid.session_id}")
        return session, messages, tid._replace(message_id=str(user["info"]["id"]))

    async def _derive(
        self, tid: TaskId, messages: list[dict[str, Any]], directory: str | None, *, idle: bool = False
    ) -> TurnState:
        statuses = {} if idle else await self.client.session_status(directory)
        error = self._session_errors.get(tid.session_id)
        user = find_user_message(messages, tid.message_id)
        created = ((user or {}).get("info") or {}).get("time", {}).get("created") or 0
        return derive(
            messages,
            str(tid.message_id),
            statuses.get(tid.session_id),
            now_ms=int(time.time() * 1000),
            session_error=error if error and error["at"] >= created else None,
        )

    def _assemble(
        self,
        tid: TaskId,
        session: dict[str, Any],
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
            error=state.error,
            files_changed=files,
            pending=pending,
            retry=retry,
            notices=self.broker.notices(tid.session_id),
            agent=state.agent,
            model=state.model,
            directory=session.get("directory"),
            title=session.get("title"),
            created_at=_iso(state.created_ms),
            completed_at=_iso(state.completed_ms),
            elapsed_seconds=round((end_ms - state.created_ms) / 1000, 3) if state.created_ms else None,
            tokens=Tokens(**state.tokens),
            cost=state.cost,
            budget=budget.as_metadata(),
            next_step=_next_step(str(tid), state.status),
            workspace=None,
        )

    # -- wait --------------------------------------------------------------------------
    async def wait(
        self,
        tid: TaskId,
        timeout: float,
        *,
        report: Reporter | None = None,
        ask: Asker | None = None,
    ) -> TaskView:
        """Until the task ends, needs input nobody here can give, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        interval = self.settings.progress_interval_seconds
        narrator = ProgressNarrator(str(tid))
        asked: set[str] = set()
        with self.hub.subscribe(tid.session_id) as sub:
            view, state = await self._read_patiently(tid, idle=False)
            last_report = time.monotonic()
            if report:
                await report(narrator.last_line)
            while view.status not in ("completed", "failed", "aborted"):
                if view.status == "waiting_for_input":
                    if ask is None:
                        break  # the caller answers with respond_to_task
                    fresh = [p for p in view.pending if p.id not in asked]
                    for request in fresh:
                        asked.add(request.id)
                        if report:
                            await report(f"Asking you: {request.description}")
                        answer = await ask(request)
                        decision, answers = answer if answer else ("reject", None)
                        try:
                            await self._answer(tid, request, decision, answers, None)
                        except TaskError:
                            pass  # answered elsewhere meanwhile (respond_to_task, input timeout)
                    if fresh:
                        view, state = await self._read_patiently(tid, idle=False)
                        continue
                now = time.monotonic()
                if now >= deadline:
                    break
                wait_for = min(deadline - now, max(interval - (now - last_report), 0.01))
                if not self.hub.connected:
                    wait_for = min(wait_for, 1.0)  # no events: read the state over HTTP instead
                batch = await sub.next_batch(wait_for)
                changed = not batch or not self.hub.connected
                idle = _ends_idle(batch)
                for event in batch:
                    line = narrator.feed(event)
                    if line and report:
                        await report(line)
                        last_report = time.monotonic()
                    changed = changed or _changes_state(event)
                if report and time.monotonic() - last_report >= interval:
                    await report(narrator.keepalive(time.monotonic() - started))
                    last_report = time.monotonic()
                if changed:
                    view, state = await self._read_patiently(tid, idle=idle)
        if view.status != "running" and (state.touched_files or view.workspace):
            # the state is fresh: only the changed files are still missing
            view.files_changed = await self._files_changed(parse_task_id(view.task_id))  # `tid` may be bare
        return view

    async def _read_patiently(self, tid: TaskId, *, idle: bool) -> tuple[TaskView, TurnState]:
        """A waiting call rides out a short OpenCode outage (a restart takes seconds)."""
        deadline = time.monotonic() + OUTAGE_PATIENCE
        while True:
            try:
                # A restarting OpenCode accepts connections before it can answer them, and such
                # a request hangs: cap each read and try again rather than wait out the timeout.
                with anyio.fail_after(STATE_READ_TIMEOUT):
                    return await self._read(tid, with_files=False, idle=idle)
            except (OpenCodeUnavailable, TimeoutError) as exc:
                if time.monotonic() >= deadline:
                    raise OpenCodeUnavailable(f"OpenCode did not answer for {OUTAGE_PATIENCE:g}s ({exc})") from exc
                await anyio.sleep(1.0)

    # -- conversation and diff ------------------------------------------------------------
    async def messages(self, task_id: str, *, limit: int, offset: int) -> MessagesView:
        _, messages, tid = await self._resolve(parse_task_id(task_id))
        conversation = bounds.task_conversation(messages, str(tid.message_id))
        page = bounds.page_messages(
            conversation, limit=limit, offset=offset, budget=self.settings.max_output_bytes, task_id=task_id
        )
        return MessagesView(
            task_id=task_id,
            messages=[Message(**m) for m in page.items],
            total=page.total,
            truncated=page.truncated,
            note=page.note,
        )

    async def diff(self, task_id: str, *, path: str | None = None) -> DiffView:
        _, _, tid = await self._resolve(parse_task_id(task_id))
        files = await self._diff(tid)
        if path:
            wanted = [f for f in files if f.get("file") == path or str(f.get("file", "")).endswith("/" + path)]
            if not wanted:
                changed = ", ".join(str(f.get("file")) for f in files) or "none"
                raise TaskError(f"task {task_id} did not change {path!r}; files it changed: {changed}")
            files = wanted
        page = bounds.page_diff(files, budget=self.settings.max_output_bytes, task_id=task_id)
        return DiffView(
            task_id=str(tid), files=[FileDiff(**f) for f in page.items], truncated=page.truncated, note=page.note
        )

    async def _files_changed(self, tid: TaskId) -> list[FileChange]:
        return [FileChange(**bounds.file_summary(f)) for f in await self._diff(tid)]

    async def _diff(self, tid: TaskId) -> list[dict[str, Any]]:
        record = Record.of(await self._session(tid.session_id))
        if record:  # an isolated task: its whole change against base_commit
            return await self.workspaces.diff(record)
        try:
            return await self.client.diff(tid.session_id, str(tid.message_id))
        except OpenCodeNotFound:
            return []

    # -- abort and answer ------------------------------------------------------------------
    async def abort(self, task_id: str | TaskId) -> AbortView:
        view = await self.view(task_id, with_files=False)
        tid = parse_task_id(view.task_id)
        if view.status in ("completed", "failed", "aborted"):
            return AbortView(
                task_id=view.task_id,
                aborted=False,
                status=view.status,
                message=f"Nothing to abort: the task had already ended ({view.status}).",
            )
        await self.client.abort(tid.session_id)
        await self._drop_stale_requests(tid.session_id, view.directory)
        view = await self.wait(tid, timeout=10.0)
        return AbortView(
            task_id=view.task_id,
            aborted=True,
            status=view.status,
            message="The task was stopped; its messages and changes so far stay readable.",
        )

    async def _drop_stale_requests(self, session_id: str, directory: str | None) -> None:
        """OpenCode keeps a request listed after an abort; answer it so it goes away."""
        try:
            for request in await open_requests(self.client, session_id, directory):
                self.broker.forget(request["id"])
                await reply(self.client, request["id"], request["kind"], "reject", message="Task aborted.")
        except OpenCodeError as exc:
            log.warning("could not clear requests of aborted session %s: %s", session_id, exc)

    async def respond(
        self,
        task_id: str,
        request_id: str,
        decision: str | None,
        answers: list[list[str]] | None,
        message: str | None,
    ) -> RespondView:
        view = await self.view(task_id, with_files=False)
        request = next((p for p in view.pending if p.id == request_id), None)
        if request is None:
            open_ids = ", ".join(p.id for p in view.pending) or "none"
            raise TaskError(
                f"task {view.task_id} has no open request {request_id!r} (status {view.status}); "
                f"open requests: {open_ids}"
            )
        if request.kind == "permission":
            if decision not in PERMISSION_REPLIES:
                raise TaskError(f"request {request_id} is a permission: reply must be one of once, always, reject")
        elif decision != "reject":
            if not answers or len(answers) != len(request.questions):
                raise TaskError(
                    f"request {request_id} asks {len(request.questions)} question(s): pass answers as one list "
                    "of chosen labels per question, e.g. [[\"yes\"]], or reply='reject'"
                )
            decision = "answer"
        await self._answer(parse_task_id(view.task_id), request, decision or "reject", answers, message)
        after = await self.view(view.task_id, with_files=False)
        return RespondView(
            task_id=view.task_id, request_id=request_id, answered=True, status=after.status, pending=after.pending
        )

    async def _answer(
        self,
        tid: TaskId,
        request: PendingRequest,
        decision: str,
        answers: list[list[str]] | None,
        message: str | None,
    ) -> None:
        self.broker.forget(request.id)
        try:
            await reply(self.client, request.id, request.kind, decision, answers=answers, message=message)
        except OpenCodeNotFound:
            raise TaskError(f"request {request.id} was already answered or has expired") from None
        self.broker.add_notice(tid.session_id, f"{request.kind} request {request.id} answered: {decision}")

    # -- sessions ----------------------------------------------------------------------
    async def _session(self, session_id: str) -> dict[str, Any]:
        """The task's session; another caller's session is reported exactly like a missing one."""
        unknown = TaskError(f"unknown task_id: OpenCode has no session {session_id} (deleted, or another OpenCode)")
        session = self._sessions.get(session_id)
        if session is None:
            try:
                session = await self.client.get_session(session_id)
            except OpenCodeNotFound:
                raise unknown from None
            self._remember(session)
        if not may_see(session):
            raise unknown
        return session

    def _remember(self, session: dict[str, Any]) -> None:
        self._sessions[session["id"]] = session
        while len(self._sessions) > 5000:
            self._sessions.popitem(last=False)


def _next_step(task_id: str, status: str) -> str | None:
    if status == "running":
        return f"Still running. Call get_task_status(task_id={task_id!r}) later, or abort_task to stop it."
    if status == "waiting_for_input":
        return "OpenCode waits for an answer: call respond_to_task with the request id from pending."
    if status == "completed":
        return "Done. get_task_diff shows the changes; run_coding_task with this task_id continues the session."
    if status == "failed":
        return "See error. run_coding_task with this task_id continues the same session with a new instruction."
    return None
