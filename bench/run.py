"""`make bench`: what the gateway costs on top of OpenCode, measured against baselines
taken in the same run (the machine is shared and noisy; ratios travel, absolute times drift).

Real `opencode serve` 1.18.33, the scripted fake LLM answering instantly, the gateway as a
subprocess, driven by the MCP SDK client. `--smoke` runs tiny sizes (CI keeps it working);
the full run writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict

import anyio
import httpx2
from mcp.shared.dispatcher import ProgressFnT

from bench.load import run_load
from bench.profile import summarize
from bench.report import kept, render
from bench.sandboxes import SandboxBench, replace_section
from bench.sandboxes import render as render_sandboxes
from bench.scale import ScaleBench
from tests.support import call_counts
from tests.support.client import data, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.procs import REPO, Gateway, OpenCodeServer, free_port, opencode_binary, wait_http


class Size(TypedDict):
    calls: int
    tasks: int
    clients: list[int]
    load_calls: int
    async_tasks: int
    sessions: list[int]
    progress: int
    repeat: int


SIZES: dict[str, Size] = {
    "smoke": {
        "calls": 20,
        "tasks": 5,
        "clients": [2, 4],
        "load_calls": 40,
        "async_tasks": 10,
        "sessions": [10, 20],
        "progress": 3,
        "repeat": 1,
    },
    "full": {
        "calls": 300,
        "tasks": 60,
        "clients": [10, 50],
        "load_calls": 1000,
        "async_tasks": 100,
        "sessions": [10, 100, 200],
        "progress": 20,
        "repeat": 3,
    },
}
# The sections measured on the bench's own gateway (the one --gateway-src replaces); the others
# start gateways of their own from this checkout.
OWN_GATEWAY = ("overhead", "completion", "progress", "throughput", "sessions", "held")
SECTIONS = (*OWN_GATEWAY, "cold_start", "scale", "sandboxes")
# The session quota is the gateway's defence against one client hoarding sessions; the bench
# is one client (one address) holding up to 200 on purpose, so its gateway allows that.
BENCH_SESSION_QUOTA = "500"
PARTIAL = [REPO / ".bench" / "partial.json"]  # where the sections measured so far are kept


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": pct(values, 50), "p99": pct(values, 99), "n": len(values)}


def ms(value: float) -> str:
    return f"{value * 1000:.2f}"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Bench:
    def __init__(
        self,
        size: str,
        root: Path,
        sections: tuple[str, ...] = SECTIONS,
        *,
        profile: bool = False,
        gateway_src: Path | None = None,
    ) -> None:
        self.size = size
        self.gateway_src = gateway_src
        self.n = SIZES[size]
        self.root = root
        self.sections = sections
        self.profile = profile
        self.results: dict[str, Any] = {}

    async def run(self) -> dict[str, Any]:
        self.llm = FakeLLM()
        self.llm.url = self.llm.start()  # type: ignore[attr-defined]
        self.opencode = OpenCodeServer(self.root / "opencode", self.llm.url).start()  # type: ignore[attr-defined]
        env = {"OPENCODE_BASE_URL": self.opencode.url, "LOG_LEVEL": "WARNING"}
        # --gateway-src: another checkout's gateway (an earlier commit's, for a before/after table)
        theirs = {"PYTHONPATH": str(self.gateway_src)} if self.gateway_src else {}
        self.gateway = Gateway(self.root / "gw", {**env, "MAX_SESSIONS_PER_CLIENT": BENCH_SESSION_QUOTA, **theirs})
        self.gateway.start()
        self.echo = self._start_echo()
        self.http = httpx2.AsyncClient(base_url=self.opencode.url, timeout=60)
        try:
            for name in OWN_GATEWAY:
                if name in self.sections:
                    await getattr(self, "progress_delay" if name == "progress" else name)()
                    PARTIAL[0].write_text(json.dumps(self.results))  # what a crash would lose
            if "cold_start" in self.sections:
                await anyio.to_thread.run_sync(self.cold_start)
            self.gateway.stop()  # the scale-out section brings its own gateways and workers
            self.opencode.stop()
            if "scale" in self.sections:
                self.results["scale"] = await ScaleBench(self.size, self.root / "scale", self.llm.url).run()  # type: ignore[attr-defined]
            if "sandboxes" in self.sections:
                self.results["sandboxes"] = await SandboxBench(self.size, self.root / "sb", self.llm.url).run()  # type: ignore[attr-defined]
        finally:
            await self.http.aclose()
            self.echo.terminate()
            self.gateway.stop()
            self.opencode.stop()
            self.llm.stop()
        return self.results

    def _start_echo(self) -> subprocess.Popen[bytes]:
        proc, self.echo_url = self._start_sdk_server()
        return proc

    def _start_sdk_server(self, *relay_to: str) -> tuple[subprocess.Popen[bytes], str]:
        """A bare MCP SDK server (bench/echo_server.py): echo, or given OpenCode's URL the bare tools."""
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.echo_server", str(port), *relay_to],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(f"http://127.0.0.1:{port}/ping", timeout=20, proc=proc)
        return proc, f"http://127.0.0.1:{port}/mcp"

    # 1 -------------------------------------------------------------------------------
    async def overhead(self) -> None:
        """`repeat` runs; each tool's row is its median run's, with the spread of the ratios."""
        bare, self.bare_url = self._start_sdk_server(self.opencode.url)
        try:
            runs = [await self._overhead_once() for _ in range(self.n["repeat"])]
        finally:
            bare.terminate()
            bare.wait()
        rows = {}
        for tool in runs[0]:
            ratios = sorted(run[tool]["ratio_p50"] for run in runs)
            median = next(run[tool] for run in runs if run[tool]["ratio_p50"] == ratios[len(ratios) // 2])
            rows[tool] = {**median, "spread": [ratios[0], ratios[-1]]}
        self.results["overhead"] = rows

    async def _overhead_once(self) -> dict[str, Any]:
        """Interleaved: each round times one call of every kind (each tool, echo, the direct
        calls), so that a shared machine's load, which moves over seconds, weighs on the
        gateway and its floors alike."""
        n = self.n["calls"]
        async with (
            mcp_session(self.gateway.mcp_url) as s,
            mcp_session(self.echo_url) as e,
            mcp_session(self.bare_url) as b,
        ):
            done = data(await s.call_tool("run_coding_task", {"prompt": script({"text": "bench"})}))
            task_id, session_id = done["task_id"], done["session_id"]
            message_id = task_id.split(".")[1]
            directory = done["directory"]

            async def get(path: str, **params: str) -> Any:  # a consumer decodes what it fetches
                return (await self.http.get(path, params=params)).json()

            async def status_calls() -> None:  # what get_task_status asks OpenCode for
                await get(f"/session/{session_id}/message")
                await get("/session/status", directory=directory)
                await get(f"/session/{session_id}/diff", messageID=message_id)

            kinds: dict[str, Callable[[], Awaitable[Any]]] = {
                "get_task_status": lambda: s.call_tool("get_task_status", {"task_id": task_id}),
                "list_agents": lambda: s.call_tool("list_agents", {}),
                "health_check": lambda: s.call_tool("health_check", {}),
                "echo": lambda: e.call_tool("echo", {"text": "x"}),
                "direct get_task_status": status_calls,
                "direct list_agents": lambda: get("/agent"),
                "direct health_check": lambda: get("/global/health"),
                "bare get_task_status": lambda: b.call_tool(
                    "bare_get_task_status", {"session_id": session_id, "directory": directory, "message_id": message_id}
                ),
                "bare list_agents": lambda: b.call_tool("bare_list_agents", {}),
                "bare health_check": lambda: b.call_tool("bare_health_check", {}),
            }
            for client in (s, e, b):  # as a real client does before its first call (output schemas)
                await client.list_tools()
            samples: dict[str, list[float]] = {kind: [] for kind in kinds}
            order, shuffle = list(kinds), random.Random(23).shuffle
            for i in range(n + 5):
                # A call right after another to OpenCode finds it awake and answers faster than
                # one after a pause (~1.2 vs ~2.5 ms here): in a fixed order the direct calls
                # followed each other and made a floor no gateway call could see. Shuffled, every
                # kind follows every other alike.
                shuffle(order)
                for kind in order:
                    started = time.perf_counter()
                    await kinds[kind]()
                    if i >= 5:  # warm-up
                        samples[kind].append(time.perf_counter() - started)
        sdk_floor = samples["echo"]
        gateway = {tool: samples[tool] for tool in ("get_task_status", "list_agents", "health_check")}
        direct = {tool: samples[f"direct {tool}"] for tool in gateway}
        rows = {}
        for tool, times in gateway.items():
            floor = {q: pct(sdk_floor, q) + pct(direct[tool], q) for q in (50, 99)}
            rows[tool] = {
                "gateway": summary(times),
                "sdk_floor": summary(sdk_floor),
                "direct": summary(direct[tool]),
                "bare": summary(samples[f"bare {tool}"]),
                "bare_ratio_p50": pct(times, 50) / pct(samples[f"bare {tool}"], 50),
                "ratio_p50": pct(times, 50) / floor[50],
                "ratio_p99": pct(times, 99) / floor[99],
            }
        return rows

    # 2 -------------------------------------------------------------------------------
    async def completion(self) -> None:
        runs = [await self._completion_once() for _ in range(self.n["repeat"])]
        ratios = sorted(run["ratio_p50"] for run in runs)
        median = next(run for run in runs if run["ratio_p50"] == ratios[len(ratios) // 2])
        self.results["completion"] = {**median, "spread": [ratios[0], ratios[-1]]}

    async def _completion_once(self) -> dict[str, Any]:
        """A task through the gateway, then the same task straight to OpenCode, in turn (so the
        machine's load weighs on both alike)."""
        n = self.n["tasks"]
        gateway: list[float] = []
        floor: list[float] = []
        async with mcp_session(self.gateway.mcp_url) as s:
            for i in range(n + 3):
                marker = f"gw-complete-{i}-{time.time_ns()}"
                result = await s.call_tool("run_coding_task", {"prompt": script({"text": "done"}, say=marker)})
                received = time.time()
                assert data(result)["status"] == "completed"
                if i >= 3:  # warm-up
                    gateway.append(received - self._last_byte(marker))
                marker = f"direct-complete-{i}-{time.time_ns()}"
                received = await self._direct_task(marker)
                if i >= 3:
                    floor.append(received - self._last_byte(marker))
        return {
            "gateway": summary(gateway),
            "floor": summary(floor),
            "ratio_p50": pct(gateway, 50) / pct(floor, 50),
            "ratio_p99": pct(gateway, 99) / pct(floor, 99),
        }

    def _last_byte(self, marker: str) -> float:
        matches = [r for r in self.llm.requests if r["body"].get("tools") and marker in json.dumps(r["body"])]
        return float(max(r["last_byte"] for r in matches))

    async def _direct_task(self, marker: str) -> float:
        """The floor: the same task sent straight to OpenCode, awaited on its event stream."""
        session = (await self.http.post("/session", json={"title": marker})).json()
        idle = anyio.Event()
        received = 0.0

        async def listen(ready: anyio.Event) -> None:
            nonlocal received
            async with self.http.stream("GET", "/event", timeout=None) as stream:
                ready.set()
                async for line in stream.aiter_lines():
                    if line.startswith("data:") and '"session.idle"' in line and session["id"] in line:
                        received = time.time()
                        idle.set()
                        return

        async with anyio.create_task_group() as tg:
            ready = anyio.Event()
            tg.start_soon(listen, ready)
            await ready.wait()
            body = {"parts": [{"type": "text", "text": script({"text": "done"}, say=marker)}]}
            await self.http.post(f"/session/{session['id']}/prompt_async", json=body)
            await idle.wait()
            tg.cancel_scope.cancel()
        return received

    # 3 -------------------------------------------------------------------------------
    async def throughput(self) -> None:
        """health_check calls/s from N clients (in client processes of their own) against the
        echo floor's, side by side, `repeat` times; the gateway's and echo's CPU per call."""
        rows = []
        for clients in self.n["clients"]:
            calls = self.n["load_calls"] // clients
            if self.profile:  # a run of its own: py-spy takes CPU from the 2 cores the ratio shares
                profile = self.root / f"profile-{clients}.txt"
                gateway = await self._gateway_load(clients, calls, "calls", profile)
                self.results.setdefault("profile", {})[str(clients)] = summarize(profile, gateway["calls"], 200)
            runs = []
            for _ in range(self.n["repeat"]):
                echo, gateway = await self._side_by_side(clients, calls, "calls")
                runs.append({"echo": echo, "gateway": gateway, "ratio": gateway["calls_per_s"] / echo["calls_per_s"]})
            rows.append({"clients": clients, "runs": runs})
        self.results["throughput"] = rows

    async def _side_by_side(self, clients: int, calls: int, shape: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The same load on echo, then on the gateway's health_check."""
        echo = await anyio.to_thread.run_sync(
            lambda: run_load(
                self.echo_url,
                "echo",
                {"text": "x"},
                clients=clients,
                calls=calls,
                shape=shape,
                server_pid=self.echo.pid,
            )
        )
        return echo, await self._gateway_load(clients, calls, shape)

    async def _gateway_load(self, clients: int, calls: int, shape: str, profile: Path | None = None) -> dict[str, Any]:
        before = self._opencode_requests()
        load = await anyio.to_thread.run_sync(
            lambda: run_load(
                self.gateway.mcp_url,
                "health_check",
                {},
                clients=clients,
                calls=calls,
                shape=shape,
                server_pid=self._gateway_pid(),
                behind_pid=self._opencode_pid(),
                profile=profile,
            )
        )
        # Concurrent health checks share a read in flight: how many reads the calls cost
        load["opencode_requests_per_call"] = (self._opencode_requests() - before) / max(load["calls"], 1)
        return load

    def _opencode_requests(self) -> float:
        """HTTP calls the gateway made to OpenCode so far, from its own /metrics."""
        text = httpx2.get(self.gateway.url + "/metrics", timeout=10).text
        counted = "ocgw_opencode_request_duration_seconds_count"
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(counted))

    # 4 -------------------------------------------------------------------------------
    async def sessions(self) -> None:
        """N clients at once, each opening a session and calling once (echo vs health_check)."""
        count = max(self.n["sessions"][:2])  # 100 in the full run
        runs = []
        for _ in range(self.n["repeat"]):
            echo, gateway = await self._side_by_side(count, 1, "sessions")
            runs.append({"echo": echo, "gateway": gateway, "ratio": gateway["p50"] / echo["p50"]})
        self.results["concurrent_sessions"] = {"sessions": count, "runs": runs}

    async def held(self) -> None:
        self.results["async_tasks"] = await self._many_async_tasks()
        self.results["sessions"] = await self._held_sessions()

    async def _many_async_tasks(self) -> dict[str, Any]:
        count = self.n["async_tasks"]
        errors = 0
        start = time.perf_counter()
        async with mcp_session(self.gateway.mcp_url, max_connections=count + 10) as s:
            ids: list[str] = []

            async def start_one(i: int) -> None:
                nonlocal errors
                prompt = script(
                    {"tool": "write", "args": {"filePath": f"bench_{i}.txt", "content": f"{i}\n"}},
                    {"text": f"task {i} done"},
                )
                result = await s.call_tool("run_coding_task_async", {"prompt": prompt})
                if result.is_error:
                    errors += 1
                else:
                    ids.append(data(result)["task_id"])

            async with anyio.create_task_group() as tg:
                for i in range(count):
                    tg.start_soon(start_one, i)
            started = time.perf_counter() - start
            completed = 0

            async def follow(task_id: str) -> None:
                nonlocal completed, errors
                status = await s.call_tool("get_task_status", {"task_id": task_id, "wait_seconds": 300})
                messages = await s.call_tool("get_task_messages", {"task_id": task_id})
                completed += not status.is_error and data(status)["status"] == "completed"
                errors += status.is_error or messages.is_error

            async with anyio.create_task_group() as tg:
                for task_id in ids:
                    tg.start_soon(follow, task_id)
        return {
            "tasks": count,
            "started_s": started,
            "all_done_s": time.perf_counter() - start,
            "completed": completed,
            "errors": errors,
            "gateway_rss_mib": rss_mib(self._gateway_pid()),
        }

    def _opencode_pid(self) -> int:
        assert self.opencode.proc is not None, "OpenCode is running"
        return self.opencode.proc.pid

    def _gateway_pid(self) -> int:
        assert self.gateway.proc is not None, "the gateway is running"
        return self.gateway.proc.pid

    async def _held_sessions(self) -> list[dict[str, Any]]:
        return [await self._hold_sessions(count) for count in self.n["sessions"]]

    async def _hold_sessions(self, count: int) -> dict[str, Any]:
        """`count` MCP sessions open at once, each after one health_check; RSS while held."""
        errors = refused = 0
        latencies: list[float] = []
        opened, release = anyio.Event(), anyio.Event()
        live = 0

        async def hold() -> None:
            nonlocal errors, refused, live
            try:
                async with mcp_session(self.gateway.mcp_url) as c:
                    start = time.perf_counter()
                    result = await c.call_tool("health_check", {})
                    latencies.append(time.perf_counter() - start)
                    errors += bool(result.is_error)
                    live += 1
                    if live == count:
                        opened.set()
                    await release.wait()
            except Exception as exc:  # the session quota's 429 is a refusal by design, not an error
                if "429" in repr(exc):
                    refused += 1
                else:
                    errors += 1
                live += 1
                if live == count:
                    opened.set()

        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(hold)
            with anyio.fail_after(300):
                await opened.wait()
            rss = rss_mib(self.gateway.proc.pid)  # type: ignore[union-attr]
            release.set()
        return {
            "sessions": count,
            "errors": errors,
            "refused": refused,
            "rss_mib": rss,
            "p50": pct(latencies, 50),
            "p99": pct(latencies, 99),
        }

    # 5 -------------------------------------------------------------------------------
    async def progress_delay(self) -> None:
        delays: list[float] = []
        seen_events: dict[str, float] = {}
        ready = anyio.Event()

        async def listen() -> None:
            async with self.http.stream("GET", "/global/event", timeout=None) as stream:
                ready.set()
                async for line in stream.aiter_lines():
                    if '"message.part.updated"' in line and '"running"' in line:
                        part = json.loads(line[5:])["payload"]["properties"]["part"]
                        if part.get("type") == "tool" and part["state"]["status"] == "running":
                            name = os.path.basename(part["state"]["input"].get("filePath", ""))
                            seen_events.setdefault(name, time.time())

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            await ready.wait()
            async with mcp_session(self.gateway.mcp_url) as s:
                for i in range(self.n["progress"]):
                    names = [f"prog_{i}_{j}_{time.time_ns()}.txt" for j in range(3)]
                    steps = [{"tool": "write", "args": {"filePath": n, "content": "x\n"}} for n in names]
                    got: dict[str, float] = {}
                    await s.call_tool(
                        "run_coding_task",
                        {"prompt": script(*steps, {"text": "ok"})},
                        progress_callback=when_written(got),
                    )
                    delays += [got[n] - seen_events[n] for n in names if n in got and n in seen_events]
            tg.cancel_scope.cancel()
        self.results["progress"] = summary(delays)

    # 6 -------------------------------------------------------------------------------
    def cold_start(self) -> None:
        """Blocking on purpose: it times whole processes (run in a worker thread)."""
        runs = 3 if self.size == "smoke" else 5
        spawn, alone = [], []
        for i in range(runs):
            env = {
                "OPENCODE_BASE_URL": f"http://127.0.0.1:{free_port()}",
                "OPENCODE_API_URL": self.llm.url,  # type: ignore[attr-defined]
                "OPENCODE_API_KEY": "sk-bench",
                "OPENCODE_MODEL_NAME": "bench-model",
                "WORKSPACE_DIR": str(self.opencode.workspace),
                "OPENCODE_STATE_DIR": str(self.root / f"cold-{i}"),
                "OPENCODE_BIN": opencode_binary(),
                "LOG_LEVEL": "WARNING",
            }
            gw = Gateway(self.root / "cold", env, args=("--spawn-opencode",))
            start = time.perf_counter()
            gw.start()
            while httpx2.get(gw.url + "/readyz").status_code != 200:
                time.sleep(0.02)
            spawn.append(time.perf_counter() - start)
            gw.stop()
            solo = Gateway(self.root / "cold", {"OPENCODE_BASE_URL": self.opencode.url, "LOG_LEVEL": "WARNING"})
            start = time.perf_counter()
            solo.start()
            alone.append(time.perf_counter() - start)
            solo.stop()
        self.results["cold_start"] = {"spawn_to_ready": summary(spawn), "gateway_alone": summary(alone)}


def when_written(got: dict[str, float]) -> ProgressFnT:
    """A progress callback noting when each `write` was reported, by file name."""

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and message.startswith("Running write on "):
            got.setdefault(message.removeprefix("Running write on "), time.time())

    return on_progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, write .bench/ instead of docs/")
    parser.add_argument("--only", help=f"a comma-separated subset of {','.join(SECTIONS)} (writes .bench/)")
    parser.add_argument("--repeat", type=int, help="runs of each side-by-side measurement (full: 3)")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway during the throughput runs")
    parser.add_argument("--before", type=Path, help="an earlier run's benchmarks.json: add a before/after table")
    parser.add_argument(
        "--gateway-src",
        type=Path,
        help="measure the gateway in another checkout's src/ (e.g. a worktree of an earlier commit); "
        f"with --only, a subset of {','.join(OWN_GATEWAY)}",
    )
    parser.add_argument("--out", type=Path, default=REPO / ".bench", help="where --only and --smoke write")
    args = parser.parse_args()
    size = "smoke" if args.smoke else "full"
    sections = tuple(args.only.split(",")) if args.only else SECTIONS
    if args.gateway_src and (others := [s for s in sections if s not in OWN_GATEWAY]):
        parser.error(f"--gateway-src measures only {','.join(OWN_GATEWAY)}; leave out {','.join(others)} with --only")
    if args.repeat:
        SIZES[size]["repeat"] = args.repeat
    started, load = time.perf_counter(), os.getloadavg()[0]
    args.out.mkdir(exist_ok=True)
    PARTIAL[0] = args.out / "partial.json"
    with tempfile.TemporaryDirectory(prefix="ocgw-bench-") as tmp:
        bench = Bench(size, Path(tmp), sections, profile=args.profile, gateway_src=args.gateway_src)
        results = anyio.run(bench.run)
    results["load_average"] = [load, os.getloadavg()[0]]
    before = json.loads(args.before.read_text()) if args.before else None
    report = render(results, size, time.perf_counter() - started, " ".join(sys.argv[1:]), before)
    out = args.out / "benchmarks.md" if args.smoke or args.only else REPO / "docs" / "benchmarks.md"
    report += "\n" + kept(call_counts.DOC.read_text())  # measured elsewhere (in memory, by hand): kept
    if "sandboxes" in results:  # its own section among the kept ones (`python -m bench.sandboxes` writes it too)
        report = replace_section(report, render_sandboxes(results["sandboxes"]))
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    (out.with_suffix(".json")).write_text(json.dumps(results, indent=2))
    print(report)


if __name__ == "__main__":
    main()
