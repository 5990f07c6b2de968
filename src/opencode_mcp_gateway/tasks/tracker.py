"""Follows the tasks this gateway started, whether or not anyone waits for them.

One background watcher on the shared event stream:

* budgets: OpenCode reports each model step's tokens and cost in `message.updated`; when a
  task's running totals break its budget, the task is aborted (its status then says
  `budget exceeded: …`, see `budget.explain`);
* metrics: tasks started, running and finished (by status), and the tokens and cost of
  every finished model step, by model.

A task is followed from its submission until a state read shows it ended. Events say when
to read; a slow sweep catches anything an event gap hid.

Budgets hold for tasks this gateway did not start too (another replica's, or its own from
before a restart): the first step of an unknown turn in a session whose metadata has a
budget adopts the turn, with the figures read back from its messages. Adopted tasks count
in no metric, so replicas sharing an OpenCode never count one task twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import anyio
from anyio.abc import TaskGroup
from pydantic import ValidationError

from ..observability import metrics
from ..opencode import Event, EventHub, MessageInfo, OpenCodeClient, OpenCodeError, OpenCodeNotFound, session_id_of
from ..primitives import LRU
from . import shaping
from .budget import Budget, token_total
from .ids import TaskId
from .state import TERMINAL, message_figures
from .views import AbortView, TaskView

log = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0
# A task's end is read first by whoever waits for it (the tool result then calls `settle`);
# the tracker looks this much later, so its read is not on the completion path of the one
# that matters (it usually finds the task settled, and reads nothing).
SETTLE_GRACE_SECONDS = 1.0
_RUNNING: dict[str, int] = {}  # counted running tasks, by worker


class TaskOps(Protocol):
    async def view(self, tid: TaskId, *, with_files: bool = True) -> TaskView: ...

    async def abort(self, tid: TaskId) -> AbortView: ...


@dataclass
class _Followed:
    tid: TaskId
    budget: Budget
    counted: bool = True  # started here: in the task and token metrics
    figures: dict[str, tuple[dict[str, int], float]] = field(default_factory=dict)  # per assistant message
    over_budget: str | None = None

    def totals(self) -> tuple[int, float]:
        tokens = sum(token_total(counts) for counts, _ in self.figures.values())
        return tokens, sum(cost for _, cost in self.figures.values())


class TaskTracker:
    def __init__(self, hub: EventHub, client: OpenCodeClient) -> None:
        self._hub = hub
        self._client = client
        self._unbudgeted: LRU[str, None] = LRU(10_000)  # turns found to have no budget
        self._ops: TaskOps | None = None
        self._tasks: dict[str, _Followed] = {}  # by the task's user message id
        # Ended tasks, a while longer: a step's final figures may arrive after a read saw the end.
        self._ended: LRU[str, _Followed] = LRU(1000)
        self._counted: LRU[str, None] = LRU(20_000)  # assistant messages already in the metrics

    def attach(self, ops: TaskOps) -> None:
        self._ops = ops

    # -- what the task layer and the tools tell it -----------------------------------------
    def track(self, tid: TaskId, budget: Budget) -> None:
        self._tasks[str(tid.message_id)] = _Followed(tid, budget)
        metrics.TASKS_STARTED.inc()
        self._set_running()

    def _set_running(self) -> None:
        # one tracker per worker: the gauge is this gateway's total
        _RUNNING[self._client.worker] = sum(1 for f in self._tasks.values() if f.counted)
        metrics.TASKS_RUNNING.set(sum(_RUNNING.values()))

    def settle(self, task_id: str, status: str) -> None:
        """A state read showed the task in `status`: if it ended, it is finished here too."""
        if status in TERMINAL:
            self._finish(task_id.rpartition(".")[2], status)

    def _finish(self, message_id: str, status: str) -> None:
        followed = self._tasks.pop(message_id, None)
        if followed is not None:
            if followed.counted:
                metrics.TASKS_FINISHED.labels(status).inc()
            self._set_running()
            self._ended[message_id] = followed

    # -- the watcher -----------------------------------------------------------------------
    async def run(self) -> None:
        last_sweep = time.monotonic()
        due: dict[str, float] = {}  # session → when to read its followed tasks
        async with anyio.create_task_group() as tg:
            with self._hub.subscribe(None) as sub:
                while True:
                    wait = min([SWEEP_SECONDS, *(at - time.monotonic() for at in due.values())])
                    sessions: set[str] = set()
                    for event in await sub.next_batch(timeout=max(wait, 0.0)):
                        sessions |= await self._on_event(event, tg)
                    now = time.monotonic()
                    if now - last_sweep >= SWEEP_SECONDS:
                        sessions |= {f.tid.session_id for f in self._tasks.values()}
                        last_sweep = now
                    for session_id in sessions:
                        due.setdefault(session_id, now + SETTLE_GRACE_SECONDS)
                    for session_id in [sid for sid, at in due.items() if at <= now]:
                        del due[session_id]
                        await self._check(session_id)

    async def _on_event(self, event: Event, tg: TaskGroup) -> set[str]:
        """Sessions whose followed tasks may have ended with this event."""
        kind = event.get("type")
        props = event.get("properties") or {}
        if kind == "gateway.resync":
            return {f.tid.session_id for f in self._tasks.values()}
        sid = session_id_of(event)
        if sid is None:
            return set()
        info = _message_info(props.get("info")) if kind == "message.updated" else None
        if info is not None:
            await self._on_message(sid, info, tg)
        if not any(f.tid.session_id == sid for f in self._tasks.values()):
            return set()
        if kind in ("session.idle", "session.error"):
            return {sid}
        if kind == "session.status" and (props.get("status") or {}).get("type") == "idle":
            return {sid}
        if info is not None and info.role == "assistant" and info.ended:
            return {sid}
        return set()

    async def _on_message(self, session_id: str, info: MessageInfo, tg: TaskGroup) -> None:
        """An assistant message's figures: into the metrics once it ended, against the budget."""
        if info.role != "assistant":
            return
        parent = str(info.parentID)
        ended = info.ended
        followed = self._tasks.get(parent) or self._ended.get(parent)
        if followed is None and not ended:
            followed = await self._adopt(session_id, parent)
        if followed is None:
            return
        counts, cost = message_figures(info)
        followed.figures[info.id] = (counts, cost)
        if ended and followed.counted:
            self._count(info, counts, cost)
        if parent in self._tasks:
            self._enforce(followed, tg)

    async def _adopt(self, session_id: str, parent: str) -> _Followed | None:
        """Follow a running turn started elsewhere, if its session has a budget."""
        if parent in self._unbudgeted:
            return None
        try:
            session = await self._client.get_session(session_id)
            budget = Budget.of_session(session)
            if budget.unlimited:
                self._unbudgeted[parent] = None
                return None
            messages = await self._client.messages(session_id, sent_with_format=shaping.sent_with_format(session))
        except OpenCodeNotFound:
            return None
        except OpenCodeError as exc:
            log.debug("could not look at session %s: %s", session_id, exc)
            return None
        if parent in self._tasks:  # submitted here while we looked: that record counts
            return self._tasks[parent]
        followed = _Followed(TaskId(session_id, parent, self._client.worker), budget, counted=False)
        for message in messages:
            if message.info.role == "assistant" and message.info.parentID == parent:
                followed.figures[message.info.id] = message_figures(message.info)
        self._tasks[parent] = followed
        log.info("following task %s for its budget", followed.tid, extra={"task_id": str(followed.tid)})
        return followed

    def _count(self, info: MessageInfo, counts: dict[str, int], cost: float) -> None:
        message_id = info.id
        if message_id in self._counted:
            return
        self._counted[message_id] = None
        model = f"{info.providerID}/{info.modelID}"
        for kind in metrics.TOKEN_KINDS:
            if counts[kind]:
                metrics.LLM_TOKENS.labels(model, kind).inc(counts[kind])
        if cost:
            metrics.LLM_COST.labels(model).inc(cost)

    def _enforce(self, followed: _Followed, tg: TaskGroup) -> None:
        if followed.over_budget is not None:
            return
        reason = followed.budget.exceeded(*followed.totals())
        if reason is None:
            return
        followed.over_budget = reason
        log.warning("aborting task %s: %s", followed.tid, reason, extra={"task_id": str(followed.tid)})
        tg.start_soon(self._abort, followed.tid)

    async def _abort(self, tid: TaskId) -> None:
        if self._ops is None:
            return
        try:
            aborted = await self._ops.abort(tid)
            self.settle(aborted.task_id, aborted.status)
        except (OpenCodeError, ValueError) as exc:
            log.warning("could not abort over-budget task %s: %s", tid, exc, extra={"task_id": str(tid)})
        except Exception:  # never let one task's trouble end the watcher (and the app with it)
            log.exception("aborting over-budget task %s failed", tid, extra={"task_id": str(tid)})

    async def _check(self, session_id: str) -> None:
        if self._ops is None:
            return
        for followed in [f for f in self._tasks.values() if f.tid.session_id == session_id]:
            try:
                view = await self._ops.view(followed.tid, with_files=False)
                self.settle(view.task_id, view.status)
            except OpenCodeError as exc:
                log.debug("could not read task %s: %s", followed.tid, exc)
            except ValueError:  # the session is gone (deleted): nothing left to follow
                self._tasks.pop(str(followed.tid.message_id), None)
                self._set_running()
            except Exception:  # never let one task's trouble end the watcher (and the app with it)
                log.exception("reading task %s failed", followed.tid)


def _message_info(raw: object) -> MessageInfo | None:
    """A `message.updated` event's message, or None when it is not one (a malformed event
    must not stop the budgets of every task)."""
    try:
        return MessageInfo.model_validate(raw)
    except ValidationError:
        return None
