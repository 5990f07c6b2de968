"""Waiting for a task: follow its session's events until it ends, needs input nobody here
can give, or the time is up; report progress on the way, and ask the caller what OpenCode
asks when the caller can answer (an MCP client that supports elicitation)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

from ..config import Settings
from ..opencode import Event, EventHub, Message, OpenCodeUnavailable
from .errors import TaskError
from .ids import TaskId
from .progress import ProgressNarrator
from .reader import Reading, TaskReader
from .transcript import Transcript
from .views import PendingRequest, TaskView

Reporter = Callable[[str], Awaitable[None]]
# Asked about one pending request during a blocking call; returns (reply, answers) or None.
Asker = Callable[[PendingRequest], Awaitable[tuple[str, list[list[str]] | None] | None]]
# Answers one pending request of a task (the answering side of the service).
Answerer = Callable[[TaskId, PendingRequest, str, list[list[str]] | None], Awaitable[None]]

OUTAGE_PATIENCE = 30.0  # seconds a waiting call keeps trying while OpenCode does not answer
STATE_READ_TIMEOUT = 10.0

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


def ends_idle(batch: list[Event]) -> bool:
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


def changes_state(event: Event) -> bool:
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


class TaskWaiter:
    def __init__(self, settings: Settings, hub: EventHub, reader: TaskReader, answer: Answerer) -> None:
        self.settings = settings
        self.hub = hub
        self.reader = reader
        self.answer = answer

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
            view, state, resolved, messages = await self._read_patiently(tid, idle=False)
            transcript = Transcript(messages)
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
                        await self._ask(tid, request, ask, report)
                    if fresh:
                        view, state, resolved, messages = await self._read_patiently(tid, idle=False)
                        transcript = Transcript(messages)
                        continue
                now = time.monotonic()
                if now >= deadline:
                    break
                wait_for = min(deadline - now, max(interval - (now - last_report), 0.01))
                if not self.hub.connected:
                    wait_for = min(wait_for, 1.0)  # no events: read the state over HTTP instead
                batch = await sub.next_batch(wait_for)
                changed = not batch or not self.hub.connected
                for event in batch:
                    transcript.feed(event)
                    line = narrator.feed(event)
                    if line and report:
                        await report(line)
                        last_report = time.monotonic()
                    changed = changed or changes_state(event)
                if report and time.monotonic() - last_report >= interval:
                    await report(narrator.keepalive(time.monotonic() - started))
                    last_report = time.monotonic()
                if changed:
                    # The events told every change of the messages: they need no read
                    known = transcript.messages() if self.hub.connected else None
                    view, state, resolved, messages = await self._read_patiently(
                        tid, idle=ends_idle(batch), known=known
                    )
                    if messages is not known:  # read from OpenCode after all: start again from it
                        transcript = Transcript(messages)
        if view.status != "running" and (state.touched_files or view.workspace):
            # the state is fresh: only the changed files are still missing
            view.files_changed = await self.reader.files_changed(resolved)
        return view

    async def _ask(self, tid: TaskId, request: PendingRequest, ask: Asker, report: Reporter | None) -> None:
        if report:
            await report(f"Asking you: {request.description}")
        answer = await ask(request)
        decision, answers = answer if answer else ("reject", None)
        try:
            await self.answer(tid, request, decision, answers)
        except TaskError:
            pass  # answered elsewhere meanwhile (respond_to_task, input timeout)

    async def _read_patiently(self, tid: TaskId, *, idle: bool, known: list[Message] | None = None) -> Reading:
        """A waiting call rides out a short OpenCode outage (a restart takes seconds)."""
        deadline = time.monotonic() + OUTAGE_PATIENCE
        while True:
            try:
                # A restarting OpenCode accepts connections before it can answer them, and such
                # a request hangs: cap each read and try again rather than wait out the timeout.
                with anyio.fail_after(STATE_READ_TIMEOUT):
                    return await self.reader.read(tid, with_files=False, idle=idle, known=known)
            except (OpenCodeUnavailable, TimeoutError) as exc:
                if time.monotonic() >= deadline:
                    raise OpenCodeUnavailable(f"OpenCode did not answer for {OUTAGE_PATIENCE:g}s ({exc})") from exc
                await anyio.sleep(1.0)
