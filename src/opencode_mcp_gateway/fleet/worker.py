"""A worker: one OpenCode and the machinery the gateway keeps for it (client, event hub,
permission broker, budget tracker, task service, load), static (the pool's `w<n>`) or made
as needed (a sandbox, fleet/sandboxes/). `Sandboxes` is the sandbox manager as the pool sees it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from ..config import Settings
from ..observability import metrics
from ..opencode import EventHub, OpenCodeClient, OpenCodeError
from ..tasks import Catalog, PermissionBroker, TaskId, TaskService
from ..tasks.tracker import TaskTracker
from ..tasks.views import SandboxHealth, WorkerHealth
from .placement import WorkerLoad


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
        except OpenCodeError as exc:  # an unsupported OpenCode still says which version it is
            healthy, version, error = False, getattr(exc, "version", None), str(exc)
        return WorkerHealth(
            name=self.name,
            healthy=healthy,
            version=version,
            url=self.client.display_url,
            error=error,
            event_stream_connected=self.hub.connected,
            running_tasks=self.load.running,
        )


Listing = Callable[[Worker], Awaitable[list[Any]]]  # a running sandbox's tasks, as a listing's JSON


class Sandboxes(Protocol):
    """The sandbox manager as the pool sees it (fleet/sandboxes/manager.py)."""

    workers: dict[str, Worker]  # the running ones
    shutting_down: bool
    listing: Listing | None  # what a stopping sandbox leaves for listings

    def holds(self, worker: str) -> bool:
        """Whether a task id's worker part names a sandbox."""

    def may_enter(self, name: str) -> bool:
        """Whether the current caller may work with sandbox `name`."""

    async def enter(self, tid: TaskId) -> Worker:
        """The sandbox of `tid`, woken if need be; another caller's reads as an unknown task."""

    def check_workspace_request(self, directory: str | None, wants_workspace: bool) -> None:
        """Refuses (TaskError) a new task's workspace the runtime cannot give it."""

    async def for_new_task(self, directory: str | None) -> Worker: ...

    async def own_for_listing(self) -> Worker | None:
        """SANDBOX=caller: the caller's own sandbox when a listing must ask it (woken if need be)."""

    def kept_listings(self) -> list[Any]:
        """What the stopped sandboxes the caller may enter left for listings (`listing`'s JSON)."""

    def using(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Held while a call works with the sandbox: it does not stop as idle meanwhile."""

    async def health(self) -> list[SandboxHealth]: ...


def build_worker(
    settings: Settings,
    name: str,
    client: OpenCodeClient,
    hub: EventHub,
    *,
    home: str | None = None,
) -> Worker:
    """`home`: a sandbox's own workspace, where its tasks without a directory run."""
    broker = PermissionBroker(client, hub, settings.permission_policy, settings.input_timeout_seconds)
    tracker = TaskTracker(hub, client)
    service = TaskService(settings, client, hub, broker, Catalog(client), tracker=tracker, home=home)
    tracker.attach(service)
    load = WorkerLoad(name, hub, client, [None, settings.workspace_root])
    return Worker(name, client, hub, broker, service, tracker, load)
