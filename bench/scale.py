"""Scale-out: gateway replicas behind a round-robin balancer, and a pool of OpenCode workers.

`make bench` runs it as one of its sections; `python -m bench.scale [--smoke]` runs it alone.
All on loopback with the fake LLM answering at once: 1 vs 3 gateways and 1 vs 2 workers
(calls/s and latency of `get_task_status` in both protocol eras), the cost of a 2025-era
call that reaches a replica other than the one holding its session (relayed) against a
local one, and many concurrent tasks over the pool (errors, and how placement spread them).
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import mcp

from tests.support.balancer import RoundRobin
from tests.support.client import data, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.procs import Gateway, OpenCodeServer

SIZES = {
    "smoke": {"clients": 3, "calls": 10, "relay_calls": 20, "tasks": 10},
    "full": {"clients": 6, "calls": 50, "relay_calls": 300, "tasks": 200},
}
FOLLOW_SECONDS = 1200.0  # how long the many-task run follows its tasks to their end
TOPOLOGIES = [(1, 1), (3, 1), (1, 2), (3, 2)]  # (gateways, workers)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def worker_of(task_id: str) -> str:
    return task_id.split(":", 1)[0] if ":" in task_id else "w0"


class Cluster:
    """`gateways` replicas over the first `workers` OpenCode workers, behind a round robin."""

    def __init__(self, root: Path, workers: list[OpenCodeServer], gateways: int, **env: str) -> None:
        self.gateways = [Gateway(root / f"g{i}", {}) for i in range(gateways)]
        peers = ",".join(f"g{i}={g.url}" for i, g in enumerate(self.gateways))
        listed = ",".join(f"w{i}={w.url}" for i, w in enumerate(workers))
        key = secrets.token_hex(32)
        for i, gateway in enumerate(self.gateways):
            gateway.env.update(
                {"OPENCODE_WORKERS": listed, "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "127.0.0.1,localhost", **env}
            )
            if gateways > 1:
                gateway.env.update({"GATEWAY_ID": f"g{i}", "GATEWAY_PEERS": peers, "REQUEST_STATE_KEY": key})
        self.balancer = RoundRobin([g.url for g in self.gateways])

    def __enter__(self) -> Cluster:
        for gateway in self.gateways:
            gateway.start()
        self.balancer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.balancer.stop()
        for gateway in self.gateways:
            gateway.stop()

    @property
    def url(self) -> str:
        return self.balancer.url + "/mcp"


class ScaleBench:
    def __init__(self, size: str, root: Path, llm_url: str, tasks: int | None = None) -> None:
        self.n = {**SIZES[size], **({"tasks": tasks} if tasks else {})}
        self.root = root
        self.llm_url = llm_url
        self.results: dict[str, Any] = {}

    async def run(self, *, only_tasks: bool = False) -> dict[str, Any]:
        self.workers = [OpenCodeServer(self.root / f"w{i}", self.llm_url).start() for i in range(2)]
        try:
            if not only_tasks:
                self.results["topologies"] = [await self.topology(g, w) for g, w in TOPOLOGIES]
                self.results["relay"] = await self.relay()
            self.results["tasks"] = await self.many_tasks()
        finally:
            for worker in self.workers:
                worker.stop()
        return self.results

    def cluster(self, gateways: int, workers: int, **env: str) -> Cluster:
        root = self.root / f"c{gateways}x{workers}-{time.monotonic_ns()}"
        return Cluster(root, self.workers[:workers], gateways, **env)

    async def topology(self, gateways: int, workers: int) -> dict[str, Any]:
        """calls/s of get_task_status from concurrent clients, per protocol era."""
        with self.cluster(gateways, workers) as cluster:
            async with mcp.Client(cluster.url) as c:
                ids = []
                for i in range(2 * workers):  # tasks on every worker to read
                    ids.append(data(await c.call_tool("run_coding_task", {"prompt": script({"text": f"t{i}"})})))
            task_ids = [t["task_id"] for t in ids]
            row: dict[str, Any] = {"gateways": gateways, "workers": workers}
            for era in ("2025", "2026"):
                row[era] = await self._load(cluster.url, era, task_ids)
        return row

    async def _load(self, url: str, era: str, task_ids: list[str]) -> dict[str, Any]:
        latencies: list[float] = []
        errors = 0

        async def client(k: int) -> None:
            nonlocal errors
            session = mcp_session(url) if era == "2025" else mcp.Client(url)
            async with session as s:
                for i in range(self.n["calls"]):
                    started = time.perf_counter()
                    try:
                        result = await s.call_tool("get_task_status", {"task_id": task_ids[(k + i) % len(task_ids)]})
                        errors += bool(result.is_error)
                    except Exception:  # counted: the figure to watch is zero
                        errors += 1
                    latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for k in range(self.n["clients"]):
                tg.start_soon(client, k)
        wall = time.perf_counter() - started
        return {
            "calls": len(latencies),
            "calls_per_s": len(latencies) / wall,
            "p50": pct(latencies, 50),
            "p99": pct(latencies, 99),
            "errors": errors,
        }

    async def relay(self) -> dict[str, Any]:
        """One 2025 session, calls alternating between the replica holding it and another."""
        with self.cluster(3, 1) as cluster:
            two = RoundRobin([g.url for g in cluster.gateways[:2]]).start()
            try:
                async with mcp_session(two.url + "/mcp") as s:
                    task_id = data(await s.call_tool("run_coding_task", {"prompt": script({"text": "r"})}))["task_id"]
                    held = next(r.session_id for r in two.routed if r.session_id)
                    owner = cluster.gateways[int(str(held).split(".")[0].removeprefix("g"))].url
                    for _ in range(6):  # warm-up
                        await s.call_tool("get_task_status", {"task_id": task_id})
                    local: list[float] = []
                    relayed: list[float] = []
                    for _ in range(self.n["relay_calls"]):
                        before = len(two.routed)
                        started = time.perf_counter()
                        await s.call_tool("get_task_status", {"task_id": task_id})
                        elapsed = time.perf_counter() - started
                        backend = next(r.backend for r in two.routed[before:] if r.rpc == "tools/call")
                        (local if backend == owner else relayed).append(elapsed)
            finally:
                two.stop()
        return {
            "local": {"p50": pct(local, 50), "p99": pct(local, 99), "n": len(local)},
            "relayed": {"p50": pct(relayed, 50), "p99": pct(relayed, 99), "n": len(relayed)},
            "ratio_p50": pct(relayed, 50) / pct(local, 50),
        }

    async def many_tasks(self) -> dict[str, Any]:
        """N concurrent run_coding_task_async over 3 gateways and 2 workers, from 10 clients (each
        its own 2025 session, so relays included), every task followed to its end."""
        count, clients = self.n["tasks"], 10
        with self.cluster(3, 2, WORKER_MAX_TASKS=str(count)) as cluster:
            errors, statuses, ids, failures = 0, Counter[str](), [], Counter[str]()
            started = time.perf_counter()
            deadline = started + FOLLOW_SECONDS

            async def one(s: Any, i: int) -> None:
                nonlocal errors
                prompt = script(
                    {"tool": "write", "args": {"filePath": f"many_{i}.txt", "content": f"{i}\n"}},
                    {"text": f"task {i} done"},
                )
                try:
                    task = data(await s.call_tool("run_coding_task_async", {"prompt": prompt}))
                    ids.append(task["task_id"])
                    status = "running"
                    while status == "running" and time.perf_counter() < deadline:
                        args = {"task_id": task["task_id"], "wait_seconds": 120}
                        status = data(await s.call_tool("get_task_status", args))["status"]
                    statuses[status] += 1
                except Exception as exc:  # counted: the figure to watch is zero
                    errors += 1
                    failures[type(exc).__name__ + ": " + str(exc)[:120]] += 1

            async def client(k: int) -> None:
                session = mcp_session(cluster.url, max_connections=count // clients + 10)
                async with session as s, anyio.create_task_group() as tg:
                    for i in range(k, count, clients):
                        tg.start_soon(one, s, i)

            async with anyio.create_task_group() as tg:
                for k in range(clients):
                    tg.start_soon(client, k)
        # Every 404 "Session not found" a replica answered, by who and why (edge/relay.py logs each).
        not_found = Counter(
            line.split("answering 404 Session not found: ", 1)[1].split(" (", 1)[0]
            for g in cluster.gateways
            for line in g.logs().splitlines()
            if "answering 404 Session not found: " in line
        ) + Counter(
            "the SDK does not hold the session"
            for g in cluster.gateways
            for line in g.logs().splitlines()
            if "does not hold it" in line
        )
        return {
            "not_found": dict(not_found),
            "tasks": count,
            "completed": statuses["completed"],
            "statuses": dict(statuses),
            "failures": dict(failures),
            "errors": errors,
            "seconds": time.perf_counter() - started,
            "per_worker": dict(sorted(Counter(map(worker_of, ids)).items())),
        }


def render(r: dict[str, Any]) -> list[str]:
    def ms(v: float) -> str:
        return f"{v * 1000:.1f}"

    lines = [
        "## Scale-out: gateway replicas and OpenCode workers",
        "",
        "Every topology behind the test suite's plain round-robin balancer (no affinity), on loopback, all "
        "processes on the same 2 cores. Reproduce this section alone with `python -m bench.scale` "
        "(`--smoke` for tiny sizes).",
        "",
    ]
    if "topologies" in r:
        lines += [
            "Concurrent clients each make sequential `get_task_status` calls on tasks spread over the workers "
            "(2025: one MCP session per client, relayed to the replica holding it when the balancer sends it "
            "elsewhere; 2026: no session).",
            "",
            "| gateways | workers | era | calls | calls/s | p50 ms | p99 ms | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in r["topologies"]:
            for era in ("2025", "2026"):
                e = row[era]
                lines.append(
                    f"| {row['gateways']} | {row['workers']} | {era} | {e['calls']} | {e['calls_per_s']:.0f} | "
                    f"{ms(e['p50'])} | {ms(e['p99'])} | {e['errors']} |"
                )
        rel = r["relay"]
        ok = "met" if rel["ratio_p50"] <= 1.3 else "NOT met"
        lines += [
            "",
            "A 2025 session's calls alternating between the replica that holds it and one that relays them: "
            f"local p50 {ms(rel['local']['p50'])} ms (p99 {ms(rel['local']['p99'])}), relayed p50 "
            f"{ms(rel['relayed']['p50'])} ms (p99 {ms(rel['relayed']['p99'])}): {rel['ratio_p50']:.2f}x "
            f"(target ≤ 1.3x: {ok}).",
            "",
        ]
    t = r["tasks"]
    spread = ", ".join(f"{w}: {n}" for w, n in t["per_worker"].items())
    failures = "; ".join(f"{n} x {what}" for what, n in t["failures"].items())
    lines += [
        f"{t['tasks']} concurrent `run_coding_task_async` tasks (each a write and an answer, then followed with "
        f"`get_task_status` until they end) over 3 gateways and 2 workers, from 10 clients: {t['completed']} "
        f"completed (statuses {t['statuses']}), {t['errors']} errors{' (' + failures + ')' if failures else ''}, "
        f"{t['seconds']:.0f} s in all; placement put {spread}. Replicas answered "
        f"{sum(t.get('not_found', {}).values())} `Session not found` (404) in all"
        f"{': ' + str(t['not_found']) if t.get('not_found') else ''}.",
        "",
    ]
    return lines


async def _main(size: str, tasks: int | None, only_tasks: bool) -> dict[str, Any]:
    llm = FakeLLM()
    url = llm.start()
    try:
        with tempfile.TemporaryDirectory(prefix="ocgw-scale-") as tmp:
            return await ScaleBench(size, Path(tmp), url, tasks).run(only_tasks=only_tasks)
    finally:
        llm.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes")
    parser.add_argument("--tasks", type=int, help="concurrent tasks in the many-task run (full: 200)")
    parser.add_argument("--only-tasks", action="store_true", help="only the many-task run")
    args = parser.parse_args()
    results = anyio.run(_main, "smoke" if args.smoke else "full", args.tasks, args.only_tasks)
    print(json.dumps(results))
    print("\n".join(render(results)))


if __name__ == "__main__":
    main()
