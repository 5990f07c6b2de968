"""Load from client processes of their own, so that the client is not what limits a server.

`run_load` starts a few client processes (`python -m bench.load ...`), each with its share of
the concurrent MCP clients; they connect, report ready, and start together on a word from
here. It returns calls/s over the common wall time, latencies, errors, refusals (429: the
session quota doing its job, not an error) and, given the server's pid, the server's CPU time
per call (from /proc), the clients' own CPU per call and, given the pid of what the server
calls (OpenCode), that process's CPU per call, optionally with a py-spy profile of the server while it runs.

Two shapes: `calls` (each client opens a session and lists the tools first, then makes its
calls one after the other) and `sessions` (on the word, each client opens a session and makes
one call, which lists the tools first: the SDK's client checks results against output schemas).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from tests.support.procs import REPO

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def run_load(
    url: str,
    tool: str,
    arguments: dict[str, Any],
    *,
    clients: int,
    calls: int = 1,
    shape: str = "calls",
    processes: int = 2,
    server_pid: int | None = None,
    behind_pid: int | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Blocking (it runs processes): call it in a worker thread from async code."""
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.load", url, tool, json.dumps(arguments), str(n), str(calls), shape],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in shares
        if n
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", "a load client did not start"
    spy = None
    if profile is not None and server_pid is not None:
        spy = subprocess.Popen(
            [
                *(str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server_pid)),
                *("--rate", "200", "--format", "raw", "--output", str(profile), "--nonblocking"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # py-spy attaches
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    behind_before = cpu_seconds(behind_pid) if behind_pid else 0.0
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    behind = cpu_seconds(behind_pid) - behind_before if behind_pid else 0.0
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes what it sampled
        spy.wait(timeout=60)
    latencies = [x for out in outputs for x in out["latencies"]]
    wall = max(out["end"] for out in outputs) - min(out["start"] for out in outputs)
    done = len(latencies)
    return {
        "clients": clients,
        "calls": done,
        "calls_per_s": done / wall if wall > 0 else 0.0,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "open_p50": pct([x for out in outputs for x in out["opens"]], 50),
        "errors": sum(out["errors"] for out in outputs),
        "refused": sum(out["refused"] for out in outputs),
        "cpu_ms_per_call": cpu * 1000 / done if done and server_pid else None,
        # the whole machine's share of a call: the clients' and what the server calls (OpenCode)
        "client_cpu_ms_per_call": sum(out["cpu"] for out in outputs) * 1000 / done if done else None,
        "behind_cpu_ms_per_call": behind * 1000 / done if done and behind_pid else None,
    }


# -- the client process ------------------------------------------------------------------------
async def _client_process(url: str, tool: str, arguments: dict[str, Any], clients: int, calls: int, shape: str) -> None:
    from tests.support.client import mcp_session  # the MCP client stack: only in the client process

    go, all_ready = anyio.Event(), anyio.Event()
    ready = 0
    result: dict[str, Any] = {"latencies": [], "opens": [], "errors": 0, "refused": 0}

    def count_ready() -> None:
        nonlocal ready
        ready += 1
        if ready == clients:
            all_ready.set()

    async def one() -> None:
        try:
            if shape == "sessions":
                count_ready()
                await go.wait()
            opened = time.perf_counter()
            async with mcp_session(url) as session:
                # Set-up, as a client connecting does it (Claude Code lists the tools right after
                # initialize): the first call would otherwise list them inside its own timing (the
                # SDK's client checks each result against its tool's output schema), ~40 kB of
                # schemas for the gateway against echo's one. It counts in opening the session.
                await session.list_tools()
                result["opens"].append(time.perf_counter() - opened)
                if shape == "calls":
                    count_ready()
                    await go.wait()
                for _ in range(calls):
                    started = time.perf_counter()
                    answer = await session.call_tool(tool, arguments)
                    result["latencies"].append(time.perf_counter() - started)
                    result["errors"] += bool(answer.is_error)
        except Exception as exc:  # counted: a refusal by the session quota is not an error
            result["refused" if "429" in repr(exc) else "errors"] += 1
            if not go.is_set() and shape == "calls":
                count_ready()

    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(one)
        await all_ready.wait()
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        result["start"] = time.time()
        cpu_start = time.process_time()
        go.set()
    result["end"] = time.time()
    result["cpu"] = time.process_time() - cpu_start
    print(json.dumps(result), flush=True)


def main() -> None:
    url, tool, arguments, clients, calls, shape = sys.argv[1:7]
    anyio.run(_client_process, url, tool, json.loads(arguments), int(clients), int(calls), shape)


if __name__ == "__main__":
    main()
