"""Who is who, as configured: the OpenCode workers (names and URLs) and the gateway replicas
(GATEWAY_PEERS). Pure parsing of settings; the fleet and the relay use the results.

The pool of OpenCode workers as configured: names and URLs, read from the settings.

Two forms (docs/design.md, "A pool of OpenCode workers"):

* `OPENCODE_WORKERS=w0=http://host:port,w1=…`: names are `w` + a number, each once;
* `OPENCODE_WORKER_URL_TEMPLATE` + `OPENCODE_WORKER_COUNT`: the chart's form, `{i}`
  expanded for i = 0..COUNT-1 (`http://ocgw-{i}.ocgw-workers.ns.svc:4096`). The gateway
  keeps host names, never resolved addresses: each new connection asks DNS again, so a
  worker pod that comes back with another address is found.

Neither set: `OPENCODE_BASE_URL` is the single worker `w0`, exactly as before the pool.

Which gateway replica hosts which worker (its pod's, docs/design.md "Stopping a pod"): in
the chart's form `w<i>` is paired with the peer named `…-<i>`; `WORKER_GATEWAYS=w0=g0,…`
says it explicitly. A worker with no host is judged by its own health alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from ._values import shown_url

# Between a replica's name and a session id in an MCP session id the relay routes by
# (`g1.<id>`), so no replica name may contain it.
PEER_SEPARATOR = "."
WORKER_NAME = re.compile(r"^w(?:0|[1-9][0-9]{0,3})$")
TASKS_PER_CPU = 4  # a task mostly waits on the model; its tools (builds, tests) take the CPU


def _check_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}: must be an http(s) URL such as http://127.0.0.1:4096 (got {shown_url(url)!r})")
    return url.rstrip("/")


def _pairs(value: str, example: str) -> dict[str, str]:
    """`a=b,c=d` → {"a": "b", "c": "d"}; each name once; raises ValueError."""
    pairs: dict[str, str] = {}
    for n, item in enumerate(filter(None, (part.strip() for part in value.split(","))), start=1):
        name, eq, other = (p.strip() for p in item.partition("="))
        if not eq or not name or not other:
            raise ValueError(f"each entry must be {example} (entry {n} is not)")
        if name in pairs:
            raise ValueError(f"worker {name[:20]} is named twice")
        pairs[name] = other
    return pairs


def parse_workers(value: str) -> dict[str, str]:
    """`w0=http://host:port,w1=…` → {"w0": "http://host:port", …}; raises ValueError."""
    workers = _pairs(value, "name=url, such as w0=http://10.0.0.5:4096")
    for name, url in workers.items():
        if not WORKER_NAME.match(name):
            raise ValueError(f"worker names are w followed by a number, such as w0 or w12 (got {name[:20]!r})")
        workers[name] = _check_url(name, url)
    return workers


def expand_template(template: str, count: int) -> dict[str, str]:
    """`http://ocgw-{i}.svc:4096`, count → {"w0": "http://ocgw-0.svc:4096", …}."""
    if "{i}" not in template:
        raise ValueError(f"must contain {{i}}, the worker's number (got {shown_url(template)!r})")
    return {f"w{i}": _check_url(f"w{i}", template.replace("{i}", str(i))) for i in range(count)}


def default_max_tasks() -> int:
    """WORKER_MAX_TASKS when not set: TASKS_PER_CPU per CPU this process may use."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(TASKS_PER_CPU, TASKS_PER_CPU * cpus)


def parse_worker_gateways(value: str) -> dict[str, str]:
    """`w0=g0,w1=g1` (WORKER_GATEWAYS) → {"w0": "g0", …}: which gateway replica hosts each worker."""
    return _pairs(value, "worker=gateway, such as w0=g0")


def hosts_by_ordinal(workers: Iterable[str], peers: Iterable[str]) -> dict[str, str]:
    """The chart's pairing: worker `w<i>` runs in the pod whose name (its GATEWAY_ID, a peer
    name) ends in `-<i>`, the StatefulSet's ordinal. Workers with no such peer are left out."""
    by_ordinal = {name.rpartition("-")[2]: name for name in peers if "-" in name}
    return {w: by_ordinal[w[1:]] for w in workers if w[1:] in by_ordinal}


def parse_peers(value: str) -> dict[str, str]:
    """`g0=http://host:port,g1=…` → {"g0": "http://host:port", …}; raises ValueError."""
    peers: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, eq, url = item.partition("=")
        name, url = name.strip(), url.strip()
        if not eq or not name or not url:
            raise ValueError(
                f"each entry must be name=url, such as g0=http://10.0.0.5:8080 (entry {len(peers) + 1} is not)"
            )
        if PEER_SEPARATOR in name:
            raise ValueError(f"a gateway name cannot contain {PEER_SEPARATOR!r} (got {name!r})")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{name}: must be an http(s) URL such as http://10.0.0.5:8080")
        peers[name] = url
    return peers
