"""The pool of OpenCode workers: one task service per worker, and the routing between them.

Each worker has its own client, event hub, permission broker, catalog, budget tracker and
task service (which stamps its worker's name on the task ids it issues). The pool is
what the tools call: a new task goes where `Placement` says; every other operation goes
to the worker named by the task id, and only to a configured one (an unknown name is an
unknown task). A worker that does not answer makes its tasks fail with an error naming
it, never "unknown task": the tasks live in the worker and are readable once it is back.
With no pool configured there is one worker, `w0` = OPENCODE_BASE_URL.

With sandboxes (fleet/sandboxes/) the workers are made as they are needed: a new task goes
to its caller's (or its own) sandbox, and a task id naming a sandbox goes there, woken if
it was stopped. The pool reaches them through `Sandboxes`, which the manager implements.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import anyio
from pydantic import ValidationError

from ..config import Settings
from ..opencode import Agent, OpenCodeError, OpenCodeUnavailable, Session
from ..tasks import Asker, TaskError, TaskId, TaskRequest, TaskService, parse_task_id
from ..tasks.listing import KeptTask, TaskLister
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
from .placement import Placement, Reporter
from .worker import Sandboxes, Worker
from .worker import build_worker as build_worker  # where it always was

log = logging.getLogger(__name__)
R = TypeVar("R")


class WorkerDown(TaskError):
    """The worker holding a task does not answer; the task is kept there."""


class TaskPool:
    def __init__(self, settings: Settings, workers: Sequence[Worker], sandboxes: Sandboxes | None = None) -> None:
        self.settings = settings
        self.workers = {w.name: w for w in workers}
        self.sandboxes = sandboxes
        if sandboxes is not None:
            sandboxes.listing = listing_of
        self.placement = Placement(
            [w.load for w in workers], max_tasks=settings.worker_task_limit, wait_seconds=settings.schedule_wait_seconds
        )

    # -- which worker ---------------------------------------------------------------------
    @property
    def first(self) -> Worker:
        return next(iter(self.workers.values()))

    @property
    def shutting_down(self) -> bool:
        if self.sandboxes is not None:
            return self.sandboxes.shutting_down
        return self.first.service.shutting_down

    @shutting_down.setter
    def shutting_down(self, value: bool) -> None:
        if self.sandboxes is not None:
            self.sandboxes.shutting_down = value
        for worker in self._every_worker():
            worker.service.shutting_down = value

    def _every_worker(self) -> list[Worker]:
        """The static workers and the sandboxes running now."""
        running = self.sandboxes.workers.values() if self.sandboxes is not None else ()
        return [*self.workers.values(), *running]

    @property
    def event_stream_connected(self) -> bool:
        return any(w.hub.connected for w in self._every_worker())

    def worker_of(self, tid: TaskId) -> Worker:
        worker = self.workers.get(tid.worker)
        if worker is None and self.sandboxes is not None:
            raise TaskError(
                f"unknown task_id {tid}: it names no sandbox. Tasks from before sandboxes (SANDBOX=off) ran in the "
                "OpenCode every caller shared, which this gateway does not run"
            )
        if worker is None:
            raise TaskError(
                f"unknown task_id {tid}: this gateway has no OpenCode worker {tid.worker} "
                f"(its workers: {', '.join(self.workers)})"
            )
        return worker

    async def agents(self) -> list[Agent]:
        """The agents OpenCode offers (the same on every worker), read afresh."""
        return await (await self.answering()).service.catalog.agents(fresh=True)

    async def answering(self) -> Worker:
        """A worker to ask what is the same everywhere (agents, models): one that is up (with
        sandboxes: one running, else the caller's own, started)."""
        if self.sandboxes is not None:
            return next(iter(self.sandboxes.workers.values()), None) or await self.sandboxes.for_new_task(None)
        return next((w for w in self.workers.values() if w.hub.connected), self.first)

    async def _worker_for(self, tid: TaskId) -> Worker:
        if self.sandboxes is not None and self.sandboxes.holds(tid.worker):
            return await self.sandboxes.enter(tid)
        return self.worker_of(tid)

    @contextlib.contextmanager
    def _reaching(self, worker: Worker, task: object | None) -> Iterator[None]:
        """`task`: the task the call is about (None: a new one)."""
        try:
            yield
        except OpenCodeUnavailable as exc:
            if len(self.workers) == 1 or self.sandboxes is not None:
                raise  # one OpenCode (or the caller's own sandbox): the error reads as it always did
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
        worker = await self._worker_for(tid)
        with self._reaching(worker, tid), self._using(worker):
            return await operation(worker.service)

    def _using(self, worker: Worker) -> contextlib.AbstractContextManager[None]:
        if self.sandboxes is not None and worker.name not in self.workers:
            return self.sandboxes.using(worker.name)
        return contextlib.nullcontext()

    # -- the task operations (the same as one worker's: TaskOperations) -----------------------
    async def submit(self, request: TaskRequest, report: Reporter | None = None) -> TaskId:
        """A new task on the least-loaded ready worker; a follow-up on its task's worker.
        `report`: told when every worker is full and the call waits for a slot."""
        if self.sandboxes is not None:
            if request.task_id:
                worker = await self._worker_for(request.task_id)
            else:
                self.sandboxes.check_workspace_request(request.directory, request.wants_workspace)
                worker = await self.sandboxes.for_new_task(request.directory)
            with self._reaching(worker, request.task_id), self._using(worker):
                return await worker.service.submit(request)
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
            tid = parse_task_id(task_id)
            running = self.sandboxes.workers if self.sandboxes is not None else {}
            worker = running.get(tid.worker) or self.worker_of(tid)
            worker.tracker.settle(task_id, status)

    async def all_sessions(self) -> list[tuple[str, Session]]:
        """Every worker's sessions, each with its worker's name; a worker down is left out."""
        found: list[tuple[str, Session]] = []

        async def read(worker: Worker) -> None:
            try:
                found.extend((worker.name, s) for s in await worker.client.all_sessions())
            except OpenCodeError as exc:
                log.warning("list_tasks: worker %s left out: %s", worker.name, exc)

        workers = list(self.workers.values())
        if self.sandboxes is not None:
            # Those running now; a stopped one is listed from what it left (`kept_tasks`).
            workers = [w for w in self.sandboxes.workers.values() if self.sandboxes.may_enter(w.name)]
            with contextlib.suppress(TaskError):
                own = await self.sandboxes.own_for_listing()
                if own is not None and own not in workers:
                    workers.append(own)
        async with anyio.create_task_group() as tg:
            for worker in workers:
                tg.start_soon(read, worker)
        return found

    async def kept_tasks(self) -> list[KeptTask]:
        """The tasks of the stopped sandboxes the caller may enter, as they were when each stopped."""
        sandboxes = self.sandboxes
        if sandboxes is None:
            return []

        def read() -> list[KeptTask]:
            kept = []
            for raw in sandboxes.kept_listings():
                with contextlib.suppress(ValidationError):  # a file of another version: left out
                    kept.append(KeptTask.model_validate(raw))
            return kept

        # A file per stopped sandbox: an admin's listing with thousands of them reads for
        # tens of milliseconds (docs/design.md), which must not stall every other call.
        # The thread sees the caller (context variables are copied to it).
        return await anyio.to_thread.run_sync(read)

    # -- health ------------------------------------------------------------------------------
    async def health(self, timeout: float = 3.0) -> tuple[OpenCodeHealth, list[WorkerHealth]]:
        """Each worker's health, and OpenCode's as a whole: healthy while one worker is."""
        every = self._every_worker()
        if not every:  # sandboxes, none running: nothing is down, each starts when needed
            return OpenCodeHealth(healthy=True, version=None, url="sandboxes", error=None), []
        if len(every) == 1:  # no task group to ask one worker (it costs a call's CPU)
            only = [await every[0].health(timeout)]
            return _summary(only), only
        workers: list[WorkerHealth] = [WorkerHealth.model_construct()] * len(every)

        async def check(i: int, worker: Worker) -> None:
            workers[i] = await worker.health(timeout)

        async with anyio.create_task_group() as tg:
            for i, worker in enumerate(every):
                tg.start_soon(check, i, worker)
        return _summary(workers), workers


def _summary(workers: list[WorkerHealth]) -> OpenCodeHealth:
    best = next((w for w in workers if w.healthy), workers[0])
    return OpenCodeHealth(healthy=best.healthy, version=best.version, url=best.url, error=best.error)


class _OneWorker:
    """One worker's tasks, as the lister reads them (a sandbox's, as it stops)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def all_sessions(self) -> list[tuple[str, Session]]:
        return [(self.worker.name, s) for s in await self.worker.client.all_sessions()]

    async def kept_tasks(self) -> list[KeptTask]:
        return []

    async def view(self, tid: TaskId, *, with_files: bool = True) -> TaskView:
        return await self.worker.service.view(tid, with_files=with_files)


async def listing_of(worker: Worker) -> list[Any]:
    """What list_tasks shows of a sandbox's tasks, kept while it is stopped: nothing in it changes then."""
    return [kept.model_dump(mode="json") for kept in await TaskLister(_OneWorker(worker)).keep()]
