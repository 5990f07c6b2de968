"""Which replica sends a task's webhooks, so that in normal operation exactly one does.

Every replica follows every worker's event stream and so sees every task end; each asks
`Duty.mine` and only the answer's replica sends:

1. the replica hosting the task's worker (WORKER_GATEWAYS, or the chart's pairing of
   worker `w<i>` with pod `<set>-<i>`), while it is ready: it also commits the task's
   workspace, and its worker's events are local to it;
2. otherwise (no pairing, or the host stopping or gone) one of the ready replicas, chosen
   by rendezvous hashing of the session id: every replica with the same view of who is
   ready picks the same one, and a replica leaving moves only its own share;
3. nobody ready at all (a whole rollout): each replica sends itself. Receivers may then see
   one event id twice, never one event under two ids.

Readiness is each peer's /readyz, which every replica asks once a second (edge/drain.py);
a replica that is stopping counts itself not ready at once. With no GATEWAY_PEERS this
replica sends everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence


class Duty:
    def __init__(
        self,
        me: str,
        replicas: Sequence[str] = (),
        hosts: Mapping[str, str] | None = None,
        ready: Callable[[str], bool] = lambda _: True,
    ) -> None:
        self.me = me
        self.replicas = sorted(set(replicas) | {me}) if replicas else [me]
        self.hosts = dict(hosts or {})
        self.ready = ready

    def sender(self, worker: str, session_id: str) -> str:
        host = self.hosts.get(worker)
        if host is not None and self.ready(host):
            return host
        candidates = [r for r in self.replicas if self.ready(r)]
        if not candidates:
            return self.me
        return max(candidates, key=lambda r: hashlib.sha256(f"{r}\n{session_id}".encode()).digest())

    def mine(self, worker: str, session_id: str) -> bool:
        return self.sender(worker, session_id) == self.me

    def hosted_elsewhere(self, worker: str) -> bool:
        """Another ready replica hosts this worker: none of its sessions is this replica's."""
        host = self.hosts.get(worker)
        return host is not None and host != self.me and self.ready(host)
