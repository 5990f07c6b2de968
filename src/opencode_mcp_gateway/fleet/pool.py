"""The pool of OpenCode workers: one task service per worker, and the routing between them.

Each worker has its own client, event hub, permission broker, catalog, budget tracker and
task service (which stamps its worker's name on the task ids it issues). The pool is
what the tools call: a new task goes where `Placement` says; every other operation goes
to the worker named by the task id, and only to a configured one (an unknown name is an
unknown task). A worker that does not answer makes its tasks fail with an error naming
it, never "unknown task": the tasks live in the worker and are readable once it is back.
With no pool configured there is one worker, `w0` = OPENCODE_BASE_URL.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import anyio

from ..config import Settings
from ..observability import metrics
from ..opencode import Agent, EventHub, OpenCodeClient, OpenCodeError, OpenCodeUnavailable, Session
from ..tasks import Asker, Catalog, PermissionBroker, TaskError, TaskId, TaskRequest, TaskService, parse_task_id
from ..tasks.tracker import TaskTracker
from ..tasks.views import (
    AbortView,
    DiffView,
    MessagesView,
    OpenCodeHealth,
    PendingRequest,
    RespondView,
    TaskView,
    WorkerHealth,
)
from .placement import Placement, Reporter, WorkerLoad

log = logging.getLogger(__name__)
R = TypeVar("R")


class WorkerDown(TaskError):
    """The worker holding a task does not answer; the task is kept there."""


@dataclass
class Worker:
    name: str
    client: OpenCodeClient
    hub: EventHub
    broker: PermissionBroker
    service: TaskService
    tracker: TaskTracker
    load: WorkerLoad

    async def run(self) -> None:
        """Its background work: events, permissions, budgets, workspaces, load, health."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.hub.run)
            tg.start_soon(self.broker.run)
            tg.start_soon(self.tracker.run)
            tg.start_soon(self.load.run)
            tg.start_soon(self.service.session_errors.run)
            tg.start_soon(self.service.workspaces.watch, self.hub)
            tg.start_soon(self.service.workspaces.janitor)  # each removes its own worker's worktrees
            tg.start_soon(self._watch_health)

    async def _watch_health(self) -> None:
        """ocgw_opencode_up: one health check every few seconds."""
        while True:
            metrics.OPENCODE_UP.labels(self.name).set(1 if (await self.health(timeout=2.0)).healthy else 0)
            await anyio.sleep(5)

    async def health(self, timeout: float = 3.0) -> WorkerHealth:
        try:
            health = await self.client.health(timeout=timeout)
            healthy, version, error = health.healthy, health.version, None
        except OpenCodeError as exc:
            healthy, version, error = False, None, str(exc)
        return WorkerHealth(
            name=self.name,
            healthy=healthy,
            version=version,
            url=self.client.display_url,
            error=error,
            event_stream_connected=self.hub.connected,
            running_tasks=self.load.running,
        )


def build_worker(
    settings: Settings,
    name: str,
    client: OpenCodeClient,
    hub: EventHub,
) -> Worker:
    broker = PermissionBroker(client, hub, settings.permission_policy, settings.input_timeout_seconds)
    tracker = TaskTracker(hub, client)
    service = TaskService(settings, client, hub, broker, Catalog(client), tracker=tracker)
    tracker.attach(service)
    load = WorkerLoad(name, hub, client, [None, settings.workspace_root])
    return Worker(name, client, hub, broker, service, tracker, load)


class TaskPool:
    def __init__(self, settings: Settings, workers: Sequence[Worker]) -> None:
        self.settings = settings
        self.workers = {w.name: w for w in workers}
        self.placement = Placement(
            [w.load for w in workers], max_tasks=settings.worker_task_limit, wait_seconds=settings.schedule_wait_seconds
        )

    # -- which worker ---------------------------------------------------------------------
    @property
    def first(self) -> Worker:
        return next(iter(self.workers.values()))

    @property
    def shutting_down(self) -> bool:
        return self.first.service.shutting_down

    @shutting_down.setter
    def shutting_down(self, value: bool) -> None:
        for worker in self.workers.values():
            worker.service.shutting_down = value

    def worker_of(self, tid: TaskId) -> Worker:
        worker = self.workers.get(tid.worker)
        if worker is None:
            raise TaskError(
                f"unknown task_id {tid}: this gateway has no OpenCode worker {tid.worker} "
                f"(its workers: {', '.join(self.workers)})"
            )
        return worker

    async def agents(self) -> list[Agent]:
        """The agents OpenCode offers (the same on every worker), read afresh."""
        return await self.answering().service.catalog.agents(fresh=True)

    def answering(self) -> Worker:
        """A worker to ask what is the same everywhere (agents, models): one that is up."""
        return next((w for w in self.workers.values() if w.hub.connected), self.first)

    @contextlib.contextmanager
    def _reaching(self, worker: Worker, task: object | None) -> Iterator[None]:
        """`task`: the task the call is about (None: a new one)."""
        try:
            yield
        except OpenCodeUnavailable as exc:
            if len(self.workers) == 1:
                raise  # one OpenCode: the error reads as it always did
            if task is None:
                raise WorkerDown(
                    f"OpenCode worker {worker.name} ({worker.client.display_url}) stopped answering while the task "
                    f"was submitted ({exc}). Try again: new tasks go to the workers that answer"
                ) from None
            raise WorkerDown(
                f"OpenCode worker {worker.name} ({worker.client.display_url}), which holds task {task}, does not "
                f"answer ({exc}). The task is kept there and is readable again once {worker.name} is back: call "
                f"get_task_status(task_id='{task}') later"
            ) from None

    async def _on(self, tid: TaskId, operation: Callable[[TaskService], Awaitable[R]]) -> R:
        """`operation` on the service of the worker holding task `tid`."""
        worker = self.worker_of(tid)
        with self._reaching(worker, tid):
            return await operation(worker.service)

    # -- the task operations (the same as one worker's: TaskOperations) -----------------------
    async def submit(self, request: TaskRequest, report: Reporter | None = None) -> TaskId:
        """A new task on the least-loaded ready worker; a follow-up on its task's worker.
        `report`: told when every worker is full and the call waits for a slot."""
        earlier = self.worker_of(request.task_id) if request.task_id else None
        load = await self.placement.acquire(earlier.load if earlier else None, report)
        worker = self.workers[load.name]
        try:
            with self._reaching(worker, request.task_id):
                return await worker.service.submit(request)
        except BaseException:
            load.release()
            raise

    async def view(self, tid: TaskId, *, with_files: bool = True) -> TaskView:
        return await self._on(tid, lambda s: s.view(tid, with_files=with_files))

    async def wait(
        self, tid: TaskId, timeout: float, *, report: Reporter | None = None, ask: Asker | None = None
    ) -> TaskView:
        return await self._on(tid, lambda s: s.wait(tid, timeout, report=report, ask=ask))

    async def messages(self, tid: TaskId, *, limit: int, offset: int) -> MessagesView:
        return await self._on(tid, lambda s: s.messages(tid, limit=limit, offset=offset))

    async def diff(self, tid: TaskId, *, path: str | None = None) -> DiffView:
        return await self._on(tid, lambda s: s.diff(tid, path=path))

    async def abort(self, tid: TaskId) -> AbortView:
        return await self._on(tid, lambda s: s.abort(tid))

    async def respond(
        self, tid: TaskId, request_id: str, decision: str | None, answers: list[list[str]] | None, message: str | None
    ) -> RespondView:
        return await self._on(tid, lambda s: s.respond(tid, request_id, decision, answers, message))

    async def answer(
        self, tid: TaskId, request: PendingRequest, decision: str, answers: list[list[str]] | None
    ) -> None:
        await self._on(tid, lambda s: s.answer(tid, request, decision, answers))

    def settle(self, task_id: str, status: str) -> None:
        """A tool result showed the task in `status` (the per-call wrapper tells the budgets)."""
        with contextlib.suppress(TaskError):
            self.worker_of(parse_task_id(task_id)).tracker.settle(task_id, status)

    async def all_sessions(self) -> list[tuple[str, Session]]:
        """Every worker's sessions, each with its worker's name; a worker down is left out."""
        found: list[tuple[str, Session]] = []

        async def read(worker: Worker) -> None:
            try:
                found.extend((worker.name, s) for s in await worker.client.all_sessions())
            except OpenCodeError as exc:
                log.warning("list_tasks: worker %s left out: %s", worker.name, exc)

        async with anyio.create_task_group() as tg:
            for worker in self.workers.values():
                tg.start_soon(read, worker)
        return found

    # -- health ------------------------------------------------------------------------------
    async def health(self, timeout: float = 3.0) -> tuple[OpenCodeHealth, list[WorkerHealth]]:
        """Each worker's health, and OpenCode's as a whole: healthy while one worker is."""
        if len(self.workers) == 1:  # no task group to ask one worker (it costs a call's CPU)
            only = [await self.first.health(timeout)]
            return _summary(only), only
        workers: list[WorkerHealth] = [WorkerHealth.model_construct()] * len(self.workers)

        async def check(i: int, worker: Worker) -> None:
            workers[i] = await worker.health(timeout)

        async with anyio.create_task_group() as tg:
            for i, worker in enumerate(self.workers.values()):
                tg.start_soon(check, i, worker)
        return _summary(workers), workers


def _summary(workers: list[WorkerHealth]) -> OpenCodeHealth:
    best = next((w for w in workers if w.healthy), workers[0])
    return OpenCodeHealth(healthy=best.healthy, version=best.version, url=best.url, error=best.error)
