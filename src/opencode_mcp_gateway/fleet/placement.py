"""Where a new task runs: the least-loaded ready worker, within WORKER_MAX_TASKS.

A worker's load is its running tasks, read from its own event stream (`session.status`
busy/retry, then idle): every replica watches the same streams, so every replica sees the
same load without a shared store. After a gap in a stream the busy sessions are read again
from `/session/status` of each directory seen busy. A placement this replica just made
counts at once (until its session shows busy), so a burst of calls does not pile onto one
worker before its events arrive. Replicas placing at the very same moment may overshoot
the limit by a task or two: the limit bounds load, it is not a lock.

When every ready worker is full, a call waits up to SCHEDULE_WAIT_SECONDS for a slot
(blocking calls say so in a progress message) and then fails with a retryable error.

A worker whose hosting gateway replica is stopping (`host`, drain.py) gets no new task,
while follow-ups of its tasks still go to it as long as it answers.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import anyio

from ..observability import metrics
from ..opencode import DISCONNECTED, RESYNC, Event, EventHub, OpenCodeClient, OpenCodeError, session_id_of
from ..tasks import TaskError

log = logging.getLogger(__name__)

RESERVATION_SECONDS = 15.0  # a placed task not seen busy by then no longer counts as reserved
_BUSY = ("busy", "retry")
_MAX_DIRECTORIES = 500


class PoolFull(TaskError):
    """Every worker is at WORKER_MAX_TASKS (or none answers): try again later."""


class Host(Protocol):
    """The gateway replica a worker runs next to (its pod's): while it stops, no new tasks."""

    name: str

    @property
    def accepting(self) -> bool: ...


class WorkerLoad:
    """One worker's running tasks, from its event stream."""

    host: Host | None = None  # None: judged by its own event stream alone

    def __init__(self, name: str, hub: EventHub, client: OpenCodeClient, directories: Sequence[str | None]) -> None:
        self.name = name
        self.hub = hub
        self.client = client
        self.busy: dict[str, str | None] = {}  # session id → directory
        self._directories: dict[str | None, None] = dict.fromkeys(directories)
        self._reserved: list[float] = []  # expiry times of placements not yet seen busy
        self.changed = anyio.Event()  # set (and renewed) whenever the load drops or rises
        metrics.WORKER_TASKS_RUNNING.labels(name).set_function(lambda: float(self.running))

    @property
    def ready(self) -> bool:
        return self.hub.connected

    @property
    def running(self) -> int:
        now = time.monotonic()
        self._reserved = [t for t in self._reserved if t > now]
        return len(self.busy) + len(self._reserved)

    def reserve(self) -> None:
        self._reserved.append(time.monotonic() + RESERVATION_SECONDS)

    def release(self) -> None:
        """A placement that did not start a task (the submission failed)."""
        if self._reserved:
            self._reserved.pop(0)
            self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    def feed(self, event: Event) -> bool:
        """Account for one event; True when the busy set must be read again."""
        kind = event.get("type")
        if kind == RESYNC:
            return True
        if kind == DISCONNECTED:
            self.busy.clear()
            self._notify()
            return False
        sid = session_id_of(event)
        if sid is None:
            return False
        if kind == "session.status":
            status = ((event.get("properties") or {}).get("status") or {}).get("type")
            if status in _BUSY:
                if sid not in self.busy:
                    self.busy[sid] = event.get("directory")
                    self._seen(event.get("directory"))
                    if self._reserved:
                        self._reserved.pop(0)  # most likely the one placed here: counted once
                    self._notify()
                return False
        if kind in ("session.status", "session.idle", "session.deleted") and self.busy.pop(sid, 0) != 0:
            self._notify()
        return False

    def _seen(self, directory: str | None) -> None:
        self._directories[directory] = None
        while len(self._directories) > _MAX_DIRECTORIES:
            del self._directories[next(iter(self._directories))]

    async def run(self) -> None:
        with self.hub.subscribe(None) as sub:
            while True:
                again = False
                for event in await sub.next_batch(timeout=60):
                    again = self.feed(event) or again
                if again:
                    await self._reread()

    async def _reread(self) -> None:
        busy: dict[str, str | None] = {}
        try:
            for directory in list(self._directories):
                statuses: dict[str, Any] = await self.client.session_status(directory)
                busy.update({sid: directory for sid, s in statuses.items() if (s or {}).get("type") in _BUSY})
        except OpenCodeError as exc:
            log.debug("worker %s: could not read the running sessions: %s", self.name, exc)
            return
        self.busy = busy
        self._notify()


Reporter = Callable[[str], Awaitable[None]]


class Placement:
    def __init__(self, loads: Sequence[WorkerLoad], *, max_tasks: int | None, wait_seconds: float) -> None:
        self.loads = list(loads)
        self.max_tasks = max_tasks
        self.wait_seconds = wait_seconds

    def _room(self, load: WorkerLoad, *, new: bool) -> bool:
        if new and _stopping(load):
            return False  # its pod stops: only its own tasks' follow-ups still go there
        return load.ready and (self.max_tasks is None or load.running < self.max_tasks)

    async def acquire(self, only: WorkerLoad | None = None, report: Reporter | None = None) -> WorkerLoad:
        """A worker with room for one more task (`only`: that worker, for a follow-up), reserved
        for the caller, who calls `release` on it if no task starts after all."""
        candidates, new = ([only], False) if only is not None else (self.loads, True)
        if len(self.loads) == 1 and self.max_tasks is None:
            return self.loads[0]  # one OpenCode, no limit: as before the pool, even while it is down
        deadline = time.monotonic() + self.wait_seconds
        told = False
        while True:
            free = [load for load in candidates if self._room(load, new=new)]
            if free:
                least = min(load.running for load in free)
                chosen = random.choice([load for load in free if load.running == least])  # noqa: S311 - replicas spread ties
                chosen.reserve()
                return chosen
            left = deadline - time.monotonic()
            if left <= 0:
                raise PoolFull(self._why(candidates, new=new))
            if report is not None and not told:
                told = True
                await report(
                    f"{self._why(candidates, new=new, waiting=True)}: waiting up to {left:.0f}s for a free slot"
                )
            with anyio.move_on_after(min(left, 1.0)):  # readiness has no event: look again each second
                await _first(load.changed for load in candidates)

    def _why(self, candidates: Sequence[WorkerLoad], *, new: bool, waiting: bool = False) -> str:
        names = ", ".join(load.name for load in candidates)
        ready = [load for load in candidates if load.ready]
        stopping = [
            f"{load.name} with gateway {load.host.name}"
            for load in ready
            if new and load.host is not None and not load.host.accepting
        ]
        if not ready:
            state = f"no OpenCode worker answers ({names})"
        elif len(stopping) == len(ready):
            state = f"every OpenCode worker that answers is stopping with its pod ({', '.join(stopping)})"
        else:
            which = "worker" if len(candidates) == 1 else f"all {len(candidates)} workers"
            verb = "is" if len(candidates) == 1 else "are"
            state = f"{which} ({names}) {verb} running WORKER_MAX_TASKS={self.max_tasks} tasks"
        if waiting:
            return state[0].upper() + state[1:]
        return (
            f"{state}, and no slot freed within SCHEDULE_WAIT_SECONDS={self.wait_seconds:g}s. "
            "This is temporary: try again in a little while"
        )


def _stopping(load: WorkerLoad) -> bool:
    return load.host is not None and not load.host.accepting


async def _first(events: Any) -> None:
    async with anyio.create_task_group() as tg:
        for event in events:

            async def wait(e: anyio.Event = event) -> None:
                await e.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(wait)
