"""The pool of OpenCode workers as configured: names and URLs, read from the settings.

Two forms (docs/design.md, "A pool of OpenCode workers"):

* `OPENCODE_WORKERS=w0=http://host:port,w1=…`: names are `w` + a number, each once;
* `OPENCODE_WORKER_URL_TEMPLATE` + `OPENCODE_WORKER_COUNT`: the chart's form, `{i}`
  expanded for i = 0..COUNT-1 (`http://ocgw-{i}.ocgw-workers.ns.svc:4096`). The gateway
  keeps host names, never resolved addresses: each new connection asks DNS again, so a
  worker pod that comes back with another address is found.

Neither set: `OPENCODE_BASE_URL` is the single worker `w0`, exactly as before the pool.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

WORKER_NAME = re.compile(r"^w(?:0|[1-9][0-9]{0,3})$")
TASKS_PER_CPU = 4  # a task mostly waits on the model; its tools (builds, tests) take the CPU


def _shown(url: str) -> str:
    from .config import shown_url

    return shown_url(url)


def _check_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}: must be an http(s) URL such as http://127.0.0.1:4096 (got {_shown(url)!r})")
    return url.rstrip("/")


def parse_workers(value: str) -> dict[str, str]:
    """`w0=http://host:port,w1=…` → {"w0": "http://host:port", …}; raises ValueError."""
    workers: dict[str, str] = {}
    for n, item in enumerate(filter(None, (part.strip() for part in value.split(","))), start=1):
        name, eq, url = (p.strip() for p in item.partition("="))
        if not eq or not name or not url:
            raise ValueError(f"each entry must be name=url, such as w0=http://10.0.0.5:4096 (entry {n} is not)")
        if not WORKER_NAME.match(name):
            raise ValueError(f"worker names are w followed by a number, such as w0 or w12 (got {name[:20]!r})")
        if name in workers:
            raise ValueError(f"worker {name} is named twice")
        workers[name] = _check_url(name, url)
    return workers


def expand_template(template: str, count: int) -> dict[str, str]:
    """`http://ocgw-{i}.svc:4096`, count → {"w0": "http://ocgw-0.svc:4096", …}."""
    if "{i}" not in template:
        raise ValueError(f"must contain {{i}}, the worker's number (got {_shown(template)!r})")
    return {f"w{i}": _check_url(f"w{i}", template.replace("{i}", str(i))) for i in range(count)}


def default_max_tasks() -> int:
    """WORKER_MAX_TASKS when not set: TASKS_PER_CPU per CPU this process may use."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(TASKS_PER_CPU, TASKS_PER_CPU * cpus)
