"""The sandbox manager: which sandbox a task runs in, and each sandbox's life.

* Which: SANDBOX=caller gives each caller one sandbox (`c-…`), SANDBOX=task each new task
  one (`t-…`); a follow-up runs in its task's. The task id names the sandbox the way it
  names a worker (`c-…:ses_….msg_…`), so any gateway process with the same key and state
  directory routes a call from the id alone. A caller may enter only its own sandboxes
  (keys.py checks the name, no store is read): someone else's id gets the same unknown-task
  error as a missing one, before anything is woken for it.
* A running sandbox is a dynamic worker of the pool: the same client, event hub, broker,
  tracker and task service a static worker has (fleet/pool.py `build_worker`).
* Life: started on first need; stopped after SANDBOX_IDLE_SECONDS without a running task
  or a call; woken by the next call that needs it (a read included). At SANDBOX_MAX, the
  least recently used idle sandbox of this process stops to make room; if none is idle the
  call fails with a retryable error. A task-scope sandbox is removed, data and all, once
  idle for WORKSPACE_TTL_HOURS (its task's retention).
* What the gateway keeps about a sandbox (its scope, owner hash and the directories it was
  given) lives next to the sandboxes but outside each (`meta/<name>.json`): the agent
  cannot add a directory to its own mounts. The file's mtime is the sandbox's last use.
* Listing: a sandbox about to stop leaves its tasks as `list_tasks` shows them
  (`listings.py`; `listing` is given by the pool), so listing a stopped one starts nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from ...config import Settings
from ...observability import metrics
from ...tasks import TaskError, TaskId
from ...tasks.ownership import SHARED_OWNER, current_caller
from ...tasks.views import SandboxHealth
from ..worker import Listing, Worker
from . import listings
from .directories import shown_directory
from .keys import SandboxKeys, is_sandbox_name, scope_of
from .records import Meta, Records
from .runtime import SandboxEndpoint, SandboxError, SandboxRuntime, SandboxSpec

log = logging.getLogger(__name__)

WorkerFactory = Callable[[SandboxSpec, SandboxEndpoint], Worker]


class SandboxesFull(TaskError):
    """SANDBOX_MAX sandboxes run and none is idle: try again later."""


class SandboxUnavailable(TaskError):
    """A sandbox could not be started or changed now; the message says what to do."""


class WorkspacesUnsupported(TaskError):
    """This runtime's sandboxes cannot take a `directory` or a repository workspace."""


class SandboxManager:
    def __init__(
        self,
        settings: Settings,
        runtime: SandboxRuntime,
        keys: SandboxKeys,
        root: Path,
        make_worker: WorkerFactory,
        env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.scope = settings.sandbox_scope
        self.runtime = runtime
        self.keys = keys
        self.root = root
        self.make_worker = make_worker
        self.env = env or {}
        self.workers: dict[str, Worker] = {}
        # Work that runs beside each sandbox's worker while it runs (the webhooks' watcher).
        self.companions: list[Callable[[Worker], Callable[[], Coroutine[Any, Any, None]]]] = []
        self.listing: Listing | None = None  # kept while it is stopped (listings.py)
        self._cancel: dict[str, anyio.CancelScope] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._tg: TaskGroup | None = None
        self._in_use: dict[str, int] = {}  # calls working with a sandbox now: it is not idle
        self.shutting_down = False
        self.records = Records(root / "meta")

    # -- which sandbox ------------------------------------------------------------------------
    def _owner(self) -> str:
        caller = current_caller()
        return caller.name if caller is not None else SHARED_OWNER

    def check_workspace_request(self, directory: str | None, wants_workspace: bool) -> None:
        """Sandbox pods work only in their own volume: the gateway prepares `directory`,
        `isolate` and `repository` on its own, which no pod mounts (and the git credentials
        must stay out of every sandbox), so a new task asking for one is refused up front."""
        if self.runtime.kind == "kubernetes" and (directory or wants_workspace):
            from .kubernetes import WORKSPACES_UNSUPPORTED

            raise WorkspacesUnsupported(WORKSPACES_UNSUPPORTED)

    def holds(self, worker: str) -> bool:
        return is_sandbox_name(worker)

    def may_enter(self, name: str) -> bool:
        caller = current_caller()
        return caller is None or caller.admin or self.keys.belongs_to(name, caller.name)

    def check_entry(self, tid: TaskId) -> None:
        """Someone else's (or a made-up) sandbox reads exactly like a task that does not exist."""
        if not (is_sandbox_name(tid.worker) and self.may_enter(tid.worker) and self.records.exists(tid.worker)):
            raise TaskError(f"unknown task_id: OpenCode has no session {tid.session_id} (deleted, or another OpenCode)")

    async def for_new_task(self, directory: str | None) -> Worker:
        owner = self._owner()
        name = self.keys.caller_sandbox(owner) if self.scope == "caller" else self.keys.task_sandbox(owner)
        return await self.open(name, directory=shown_directory(directory, self.settings, self.root), owner=owner)

    async def enter(self, tid: TaskId) -> Worker:
        self.check_entry(tid)
        return await self.open(tid.worker)

    async def own_for_listing(self) -> Worker | None:
        """SANDBOX=caller: the caller's sandbox when a listing must ask its OpenCode: it runs, or
        it stopped with no listing kept (before this gateway kept them). Never started for
        a caller who has none."""
        if self.scope != "caller":
            return None
        name = self.keys.caller_sandbox(self._owner())
        if name in self.workers or (self.records.exists(name) and not self.records.has_listing(name)):
            return await self.open(name)
        return None

    def kept_listings(self) -> list[Any]:
        return listings.of_stopped(self.records, self.workers, self.may_enter)

    @contextlib.contextmanager
    def using(self, name: str) -> Iterator[None]:
        """While a call works with sandbox `name` (a blocking wait included), it does not idle."""
        self._in_use[name] = self._in_use.get(name, 0) + 1
        try:
            yield
        finally:
            self._in_use[name] -= 1
            if not self._in_use[name]:
                del self._in_use[name]
            self.records.touch(name)

    # -- starting and stopping ----------------------------------------------------------------------
    async def open(self, name: str, *, directory: str | None = None, owner: str | None = None) -> Worker:
        """The running worker of sandbox `name`, started (or restarted with `directory`) if need be."""
        async with self._locks.setdefault(name, anyio.Lock()):
            known = self.records.read(name)
            meta = known or Meta(scope_of(name), self.keys.owner_hash(owner or self._owner()))
            added = directory is not None and directory not in meta.directories
            if added:
                meta.directories.append(directory)  # type: ignore[arg-type]
            worker = self.workers.get(name)
            if worker is not None and added:
                if worker.load.running:
                    raise SandboxUnavailable(
                        f"your sandbox runs {worker.load.running} task(s) now and shows a new directory only after "
                        "a restart: try again when they have ended, or leave directory out"
                    )
                await self._close(name, why="to add a directory")
                worker = None
            if added or known is None:
                self.records.write(name, meta)
            if worker is None:
                worker = await self._start(name, meta)
            self.records.touch(name)
            return worker

    async def _start(self, name: str, meta: Meta) -> Worker:
        await self._make_room(name)
        spec = SandboxSpec(
            name=name,
            scope="caller" if meta.scope == "caller" else "task",
            owner_hash=meta.owner,
            opencode_password=self.keys.password(name),
            llm_token=self.keys.llm_token(name),
            env=dict(self.env),
            directories=tuple(meta.directories),
        )
        started = time.perf_counter()
        try:
            endpoint = await self.runtime.ensure(spec)
        except SandboxError as exc:
            log.error("sandbox %s could not start: %s", name, exc)
            raise SandboxUnavailable(f"your sandbox could not start ({exc}); try again in a little while") from None
        metrics.SANDBOX_START_SECONDS.observe(time.perf_counter() - started)
        self.records.drop_listing(name)  # it runs: its OpenCode answers for its tasks again
        worker = self.make_worker(spec, endpoint)
        worker.service.shutting_down = self.shutting_down
        self.workers[name] = worker
        scope = anyio.CancelScope()
        self._cancel[name] = scope
        assert self._tg is not None, "SandboxManager.run must be running"
        self._tg.start_soon(self._run_worker, worker, scope)
        self.records.touch(name)
        await self._count()
        return worker

    async def _run_worker(self, worker: Worker, scope: anyio.CancelScope) -> None:
        with scope:
            async with anyio.create_task_group() as tg:
                for companion in self.companions:
                    tg.start_soon(companion(worker))
                await worker.run()

    async def _make_room(self, name: str) -> None:
        states = await self.runtime.states()
        running = {n for n, s in states.items() if s != "stopped" and n != name} | (set(self.workers) - {name})
        while len(running) >= self.settings.sandbox_max:
            idle = sorted(
                (self.records.last_use(n), n)
                for n, w in self.workers.items()
                if n != name and not w.load.running and n not in self._in_use
            )
            if not idle:
                raise SandboxesFull(
                    f"all SANDBOX_MAX={self.settings.sandbox_max} sandboxes are running tasks. This is temporary: "
                    "try again in a little while"
                )
            victim = idle[0][1]
            await self._close(victim, why="to make room (SANDBOX_MAX)")
            running.discard(victim)

    async def _close(self, name: str, *, why: str, kept: bool = False) -> None:
        """`kept`: its listing is kept already."""
        if not kept and name in self.workers:
            await listings.keep(self.records, self.listing, {name: self.workers[name]})
        worker = self.workers.pop(name, None)
        scope = self._cancel.pop(name, None)
        if scope is not None:
            scope.cancel()
        if worker is not None:
            await worker.client.aclose()
        for gauge in (metrics.WORKER_TASKS_RUNNING, metrics.OPENCODE_UP):
            try:
                gauge.remove(name)
            except KeyError:
                pass
        log.info("sandbox %s: stopping %s", name, why)
        await self.runtime.stop(name)
        await self._count()

    # -- background work ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Hosts the sandboxes' workers; stops idle sandboxes and removes expired task sandboxes."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                while True:
                    await anyio.sleep(min(max(self.settings.sandbox_idle_seconds / 4, 0.5), 30.0))
                    await self._sweep()
            finally:
                with anyio.CancelScope(shield=True):
                    await listings.keep(self.records, self.listing, dict(self.workers))  # at once: stop quickly
                    for name in list(self.workers):
                        await self._close(name, why="with the gateway", kept=True)
                tg.cancel_scope.cancel()

    async def _sweep(self) -> None:
        for name, worker in list(self.workers.items()):
            if worker.load.running or name in self._in_use:
                self.records.touch(name)  # working is being used
            elif time.time() - self.records.last_use(name) >= self.settings.sandbox_idle_seconds:
                async with self._locks.setdefault(name, anyio.Lock()):
                    if name in self.workers and not worker.load.running and name not in self._in_use:
                        idle = self.settings.sandbox_idle_seconds
                        await self._close(name, why=f"idle for SANDBOX_IDLE_SECONDS={idle:g}")
        retention = self.settings.workspace_ttl_hours * 3600
        for name in self.records.names("t-"):
            if name not in self.workers and time.time() - self.records.last_use(name) >= retention:
                async with self._locks.setdefault(name, anyio.Lock()):
                    log.info("sandbox %s: removed with its task (WORKSPACE_TTL_HOURS)", name)
                    await self.runtime.remove(name)
                    self.records.forget(name)
        await self._count()

    async def _count(self) -> None:
        counts = dict.fromkeys(("starting", "running", "stopped"), 0)
        for state in (await self.runtime.states()).values():
            counts[state] = counts.get(state, 0) + 1
        for state, count in counts.items():
            metrics.SANDBOXES.labels(state).set(count)

    async def health(self) -> list[SandboxHealth]:
        states = await self.runtime.states()
        now = time.time()
        return [
            SandboxHealth(
                name=name,
                state=state,
                scope=scope_of(name),
                running_tasks=self.workers[name].load.running if name in self.workers else 0,
                idle_seconds=round(now - self.records.last_use(name), 1),
            )
            for name, state in sorted(states.items())
        ]
