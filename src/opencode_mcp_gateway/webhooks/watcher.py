"""Notices what a webhook must tell, on one OpenCode worker, whether or not anyone waits.

A background subscriber to the worker's shared event stream: after an event that can end
a task or open a request (`session.idle`, `session.error`, `permission.asked`,
`question.asked`) it reads the session's owed tasks (those whose end is not settled) the way
`get_task_status` does and hands each event the read shows (its end, or each open request) to the
deliverer, once per destination that has no mark in the session's `notify` record.

A sweep makes up for what no event said: at start (a task that ended while every gateway
was stopped), after a gap in the stream, and every SWEEP_SECONDS (a replica that stopped
while it owed a delivery: the next sender finds it unmarked). It lists the worker's
sessions once and reads only those with an owed task whose end is not yet marked.

Only the replica `Duty` names acts on a session; a notify_url read back from the metadata is
checked against WEBHOOK_URL_ALLOWLIST again before anything is sent to it (the agent holds
OpenCode's password and could rewrite the record).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Protocol

import anyio

from ..opencode import Event as StreamEvent
from ..opencode import EventHub, OpenCodeClient, OpenCodeError, Session, session_id_of
from ..tasks import TaskError, TaskId, parse_task_id
from ..tasks.permissions import CREATED_BY
from ..tasks.views import TaskView
from .delivery import Deliverer, Job, Result
from .duty import Duty
from .events import WAITING, end_ids, events_of
from .policy import WebhookRefused, check_notify_url
from .records import Records, Target

log = logging.getLogger(__name__)

SWEEP_SECONDS = 120.0
_CHANGES = frozenset({"session.idle", "session.error", "permission.asked", "question.asked"})


class TaskReads(Protocol):
    async def view(self, tid: TaskId, *, with_files: bool = True) -> TaskView: ...


class Watcher:
    def __init__(
        self,
        worker: str,
        client: OpenCodeClient,
        hub: EventHub,
        tasks: TaskReads,
        deliverer: Deliverer,
        duty: Duty,
        *,
        allow_list: list[str],
        deployment_url: str | None,
        sweep_seconds: float = SWEEP_SECONDS,
        first_sweep_after: float = 0.0,
    ) -> None:
        self.worker = worker
        self._client = client
        self._hub = hub
        self._tasks = tasks
        self._deliverer = deliverer
        self._duty = duty
        self._records = Records(client)
        self._allow_list = allow_list
        self._deployment_url = deployment_url
        self._sweep_seconds = sweep_seconds
        self._first_sweep_after = first_sweep_after  # peers' readiness known before choosing senders
        self._swept = False

    async def run(self) -> None:
        with self._hub.subscribe(None) as sub:  # before the first sweep: nothing falls between
            while not await self._hub.wait_connected(60):
                pass
            await anyio.sleep(self._first_sweep_after)
            due, swept_generation = 0.0, -1
            while True:
                if time.monotonic() >= due:
                    swept_generation = self._hub.generation
                    await self._guarded(self.sweep())
                    due = time.monotonic() + self._sweep_seconds
                sessions: set[str] = set()
                for event in await sub.next_batch(timeout=max(due - time.monotonic(), 0.1)):
                    if event.get("type") == "gateway.resync":
                        # a gap (a reconnect since the last sweep, or this subscriber fell behind)
                        if (event.get("properties") or {}).get("generation") != swept_generation:
                            due = 0.0
                    elif (sid := _changed(event)) is not None:
                        sessions.add(sid)
                for sid in sessions:
                    await self._guarded(self.check(sid))

    async def sweep(self) -> None:
        """Every session of this worker with an owed task whose end is not marked as sent."""
        if self._duty.hosted_elsewhere(self.worker):
            return
        checked = 0
        for session in await self._client.all_sessions():
            target = Target.of(session)
            if target is None or target.task is None or not _ours(session):
                continue
            destinations = self._destinations(target, quiet=True)
            if not target.deployment:  # a session from before WEBHOOK_URL: its past is not owed there
                destinations.pop("deployment", None)
            if not destinations or all(self._settled(target, session.id, t, destinations) for t in target.tasks):
                continue
            checked += 1
            await self._guarded(self.check(session.id))
        if not self._swept:
            self._swept = True
            log.info("webhooks: first sweep of worker %s done (%d sessions checked)", self.worker, checked)

    async def check(self, session_id: str) -> None:
        """Reads the session's notified task and hands over what it has to tell."""
        if not self._duty.mine(self.worker, session_id):
            return
        session = await self._client.get_session(session_id)
        if not _ours(session):
            return
        target = Target.of(session)
        if target is None and self._deployment_url is None:
            return
        target = target or Target()
        destinations = self._destinations(target)
        if not destinations:
            return
        # The newest task always (a record written in a race may miss it), then what else is owed.
        newest = await self._tasks.view(TaskId(session_id, None, self.worker), with_files=True)
        views = [newest]
        for task in target.tasks:
            tid = TaskId(session_id, task, self.worker)
            if str(tid) != newest.task_id and not self._settled(target, session_id, task, destinations):
                views.append(await self._tasks.view(tid, with_files=True))
        for view in views:
            for event in events_of(view):
                if event.kind == WAITING and session.metadata.get("permissionPolicy") != "ask":
                    continue  # under allow and deny the broker answers at once: nobody is waited for
                for destination, url in destinations.items():
                    if not target.settled(event.id, destination):
                        job = Job(event, destination, url, session_id, tuple(destinations))
                        self._deliverer.enqueue(job, self._recorded)

    def _settled(self, target: Target, session_id: str, task: str, destinations: dict[str, str]) -> bool:
        """The task's end is marked for every destination (one of its three possible ids)."""
        ends = end_ids(str(TaskId(session_id, task, self.worker)))
        return any(all(target.settled(e, d) for d in destinations) for e in ends)

    def _destinations(self, target: Target, *, quiet: bool = False) -> dict[str, str]:
        found: dict[str, str] = {}
        if target.url:
            try:
                found["caller"] = check_notify_url(target.url, self._allow_list)
            except WebhookRefused:
                if not quiet:  # not the URL itself: it may hold the receiver's token
                    log.warning("a session's notify_url is not allowed by WEBHOOK_URL_ALLOWLIST: nothing is sent to it")
        if self._deployment_url:
            found["deployment"] = self._deployment_url
        return found

    async def _recorded(self, job: Job, result: Result) -> None:
        ends = parse_task_id(job.event.task_id).message_id if job.event.kind != WAITING else None
        await self._records.mark(
            job.session_id, job.event.id, job.destination, result, ends=ends, destinations=job.destinations
        )

    async def _guarded(self, work: Awaitable[None]) -> None:
        try:
            await work
        except (OpenCodeError, TaskError) as exc:
            log.debug("webhooks on worker %s: %s", self.worker, exc)
        except Exception:  # never let one session's trouble end the watcher (and the app with it)
            log.exception("webhooks on worker %s failed", self.worker)


def _ours(session: Session) -> bool:
    return session.metadata.get("createdBy") == CREATED_BY


def _changed(event: StreamEvent) -> str | None:
    """The session whose task may have ended or opened a request with this event."""
    if event.get("type") in _CHANGES:
        return session_id_of(event)
    status = ((event.get("properties") or {}).get("status") or {}).get("type")
    if event.get("type") == "session.status" and status == "idle":
        return session_id_of(event)
    return None
