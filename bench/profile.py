"""Reading a py-spy profile of the gateway (raw folded stacks) as CPU milliseconds per call.

`summarize` turns the samples into: the CPU per call the profile saw, where it was spent by
package (the sampled leaf frame's), and the inclusive cost of the frames issue #23 named
(the HTTP request to OpenCode, the connection pool's scan, tracing spans, task groups, ...).
`python -m bench.profile FILE CALLS RATE` prints one.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_WAITING = frozenset({"select", "poll", "epoll"})
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")
# frame name (a substring of "function (file") → what a reader calls it
NAMED = {
    "send (httpx2/_client.py": "httpx2 AsyncClient.send (a request to OpenCode, whole)",
    "build_request (httpx2/_client.py": "httpx2 build_request",
    "_assign_requests_to_connections": "connection pool scan (_assign_requests_to_connections)",
    "has_expired": "connection expiry checks (has_expired)",
    "_request (opencode_mcp_gateway/opencode/_client.py": "OpenCodeClient._request (whole)",
    "opencode_span": "tracing: OpenCode call span",
    "tool_span": "tracing: tool span",
    "start_as_current_span": "tracing: any span (the MCP SDK's own included)",
    "create_task_group": "anyio task groups",
    "health (opencode_mcp_gateway/fleet/pool.py": "TaskPool.health",
    "__call__ (opencode_mcp_gateway/tools/observe.py": "per-call wrapper (tools/observe.py)",
    "model_dump": "pydantic model_dump",
    "validate_python": "pydantic validation",
}


def _package(file: str) -> str:
    """py-spy names a file by its path below site-packages (or the standard library)."""
    if "opencode_mcp_gateway/" in file:
        return "gateway: " + file.split("opencode_mcp_gateway/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/" in file:
        return file.split("site-packages/")[-1].split("/", 1)[0]
    return Path(file).stem


def _frames(stack: str) -> list[tuple[str, str]]:
    found = []
    for raw in stack.split(";"):
        m = _FRAME.match(raw.strip())
        found.append((m["func"], m["file"]) if m else (raw, ""))
    return found


def summarize(path: Path, calls: int, rate: int) -> dict[str, Any]:
    """`calls`: the calls the server answered while it was sampled `rate` times a second."""
    packages: Counter[str] = Counter()
    named: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        if not frames or frames[-1][0] in _WAITING:
            continue  # the event loop waiting in epoll: no work
        total += n
        packages[_package(frames[-1][1])] += n
        text = ";".join(f"{func} ({file}" for func, file in frames)
        for key, name in NAMED.items():
            if key in text:
                named[name] += n
    per_call = 1000 / rate / max(calls, 1)  # ms of CPU per sample, per call
    return {
        "calls": calls,
        "cpu_ms_per_call": total * per_call,
        "by_package": [(name, n * per_call) for name, n in packages.most_common(12)],
        "named": [(name, named[name] * per_call) for name in NAMED.values() if named[name]],
    }


def render(profile: dict[str, Any]) -> list[str]:
    lines = [
        f"CPU per call seen by the profiler: {profile['cpu_ms_per_call']:.2f} ms ({profile['calls']} calls).",
        "",
        "| where (leaf frame's package) | ms per call |",
        "|---|---|",
        *(f"| {name} | {ms:.3f} |" for name, ms in profile["by_package"]),
        "",
        "| named frame (inclusive: it and what it calls) | ms per call |",
        "|---|---|",
        *(f"| {name} | {ms:.3f} |" for name, ms in profile["named"]),
        "",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(render(summarize(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))))
