"""A stopping pod's worker leaves placement before it stops (docs/design.md, "Stopping a pod").

In the chart each pod is one gateway replica and one OpenCode worker, and the worker needs
its gateway (the LLM proxy, the workspaces on its volume). So a worker takes new tasks only
while the replica hosting it is ready:

* `Drain`: this replica stops. On the first SIGTERM (http_server.py) it turns its /readyz
  503 at once and keeps serving everything for SHUTDOWN_DRAIN_SECONDS (running tasks, their
  reads, aborts and follow-ups, relays of its sessions), then stops as before.
* `PeerReadiness`: another replica's /readyz, asked every PROBE_SECONDS. A worker hosted by
  a replica that is not ready (stopping, gone, or without an OpenCode) gets no new task.

Which replica hosts which worker is configuration (`Settings.worker_hosts`); a worker with
no host is judged by its own health, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import anyio
import httpx2

if TYPE_CHECKING:
    from ..fleet import WorkerLoad

log = logging.getLogger(__name__)

PROBE_SECONDS = 1.0


class Drain:
    """This replica is stopping: out of placement, still serving."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.since: float | None = None

    @property
    def accepting(self) -> bool:
        return self.since is None

    def start(self) -> None:
        if self.since is None:
            self.since = time.monotonic()


class PeerReadiness:
    """Another replica's readiness, from its /readyz (every replica answers it unauthenticated)."""

    def __init__(self, name: str, url: str, http: httpx2.AsyncClient) -> None:
        self.name = name
        self.url = url.rstrip("/") + "/readyz"
        self.http = http
        self.accepting = True  # until its first answer: a replica starting with the others is not held back
        self.why = ""

    async def check(self) -> None:
        try:
            response = await self.http.get(self.url)
            ready, why = response.status_code == 200, response.text[:200]
        except httpx2.HTTPError as exc:
            ready, why = False, f"{type(exc).__name__}"
        if ready != self.accepting:
            log.warning(
                "gateway %s %s: %s",
                self.name,
                "is ready again: its worker takes new tasks"
                if ready
                else "is not ready: its worker takes no new tasks",
                why,
            )
        self.accepting, self.why = ready, why

    async def run(self) -> None:
        while True:
            await self.check()
            await anyio.sleep(PROBE_SECONDS)


class HostWatch:
    """Gives each hosted worker its host, and keeps the other replicas' readiness current.
    `every_peer`: follow every peer, not only hosts (who sends a webhook, webhooks/duty.py)."""

    def __init__(
        self,
        hosts: Mapping[str, str],
        loads: Mapping[str, WorkerLoad],
        drain: Drain,
        peers: Mapping[str, str],
        *,
        every_peer: bool = False,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx2.AsyncClient(timeout=httpx2.Timeout(2.0), transport=transport)
        self._drain = drain
        self.peers: dict[str, PeerReadiness] = {}
        if every_peer:
            self.peers = {n: PeerReadiness(n, url, self._http) for n, url in peers.items() if n != drain.name}
        for worker, gateway in hosts.items():
            load = loads.get(worker)
            if load is None or gateway not in peers:
                continue
            if gateway == drain.name:
                load.host = drain  # this replica's own worker: no need to ask
            else:
                if gateway not in self.peers:
                    self.peers[gateway] = PeerReadiness(gateway, peers[gateway], self._http)
                load.host = self.peers[gateway]

    def ready(self, name: str) -> bool:
        """Whether replica `name` is ready: this one unless stopping, a peer by its last answer."""
        if name == self._drain.name:
            return self._drain.accepting
        peer = self.peers.get(name)
        return peer is not None and peer.accepting

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            for peer in self.peers.values():
                tg.start_soon(peer.run)

    async def aclose(self) -> None:
        await self._http.aclose()
