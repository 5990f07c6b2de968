"""docs/benchmarks.md from a `make bench` run: each section once, each with its ratio to a
floor measured in the same run and whether its target is met.

The sections after the measured ones (from `tests/support/call_counts.py`'s heading on) are
measured elsewhere (in memory, or by hand) and carried over from the current file as they are.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from bench.profile import render as render_profile
from bench.scale import render as render_scale
from opencode_mcp_gateway.opencode.pins import OPENCODE_VERSION
from tests.support import call_counts

TARGETS = {"overhead": 1.2, "completion": 1.15, "throughput": 0.6, "sessions": 2.0}


def ms(value: float) -> str:
    return f"{value * 1000:.2f}"


def target(ok: bool) -> str:
    return "met" if ok else "NOT met"


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def nearest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose ratio is nearest the median: the one whose figures a table row shows."""
    middle = median([r["ratio"] for r in runs])
    return min(runs, key=lambda r: abs(r["ratio"] - middle))


def kept(text: str) -> str:
    """The carried-over sections of a benchmarks.md text."""
    return text[text.index(call_counts.HEADING) :] if call_counts.HEADING in text else ""


def _machine(load: list[float]) -> str:
    cores = os.cpu_count() or 1
    if load[0] < 0.5 * cores:  # what the bench's own processes add shows in the figure at the end
        return (
            f"**A quiet machine**: load average {load[0]:.1f} at the start, {load[1]:.1f} at the end (the "
            f"bench's own processes) on {cores} cores; a virtual machine's timing still moves between runs."
        )
    return (
        f"**A shared machine**: other jobs ran beside the bench (load average {load[0]:.1f} at the start, "
        f"{load[1]:.1f} at the end, on {cores} cores), so absolute times are noisy."
    )


def render(results: dict[str, Any], size: str, seconds: float, args: str, before: dict[str, Any] | None = None) -> str:
    load = results.get("load_average", [0.0, 0.0])
    lines = [
        "# Benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} with `make bench` ({size} size{', ' + args if args else ''}; "
        f"{seconds:.0f} s) on {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
        f"mcp {version('mcp')}, opencode {OPENCODE_VERSION}, fake LLM answering at once.",
        _machine(load),
        "Every target is a ratio to a floor measured side by side in the same run; each side-by-side "
        "measurement ran several times and the spread of its ratio is shown.",
        "Re-run: `make bench` (writes this file; `.venv/bin/python -m bench.run --only throughput,sessions "
        "--profile` runs some sections into `.bench/`; `--gateway-src OTHER/src --out DIR` measures another "
        "checkout's gateway, and `--before DIR/benchmarks.json` compares with it; `make bench-smoke` runs "
        "tiny sizes).",
        "",
    ]
    parts: list[tuple[str, Callable[[Any], list[str]]]] = [
        ("overhead", _overhead),
        ("completion", _completion),
        ("throughput", _throughput),
        ("concurrent_sessions", lambda _: _sessions(results)),
        ("progress", _progress),
        ("cold_start", _cold_start),
        ("scale", lambda r: render_scale(r)),
        ("profile", _profile),
    ]
    number = 0
    for key, part in parts:
        if key in results:
            number += 1
            body = part(results[key])
            lines += [body[0].replace("## ", f"## {number}. ", 1), *body[1:]]
    if before is not None:  # not numbered: it compares two runs, it measures nothing new
        body = compare(before, results, "Before and after issue #23")
        lines += [body[0], *BEFORE_AFTER, *body[1:]]
    lines += READING
    return "\n".join(lines)


def cpu_ratios(runs: list[dict[str, Any]]) -> list[float]:
    """Gateway CPU per call over echo's, per run: steadier than calls/s on a shared machine
    (a process's CPU time does not count the time it waited for a core)."""
    return [r["gateway"]["cpu_ms_per_call"] / r["echo"]["cpu_ms_per_call"] for r in runs]


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """Each target's ratio (medians over the runs), by a name a reader knows."""
    found: dict[str, float] = {}
    for tool, row in results.get("overhead", {}).items():
        found[f"{tool} overhead, p50 (target ≤ {TARGETS['overhead']})"] = row["ratio_p50"]
    if "completion" in results:
        found[f"completion, p50 (target ≤ {TARGETS['completion']})"] = results["completion"]["ratio_p50"]
    for row in results.get("throughput", []):
        name = f"throughput at {row['clients']} clients (target ≥ {TARGETS['throughput']})"
        found[name] = median([r["ratio"] for r in row["runs"]])
        found[f"CPU per call at {row['clients']} clients, gateway / echo (no target)"] = median(cpu_ratios(row["runs"]))
    if "concurrent_sessions" in results:
        s = results["concurrent_sessions"]
        name = f"{s['sessions']} new sessions, call p50 (target ≤ {TARGETS['sessions']})"
        found[name] = median([r["ratio"] for r in s["runs"]])
        found["CPU per new session, gateway / echo (no target)"] = median(cpu_ratios(s["runs"]))
    return found


def compare(before: dict[str, Any], after: dict[str, Any], what: str) -> list[str]:
    """Before and after a change, each measured in a run of its own (same bench, same sizes)."""
    old, new = ratios(before), ratios(after)
    lines = [
        f"## {what}",
        "",
        "| ratio | before | after |",
        "|---|---|---|",
        *(f"| {name} | {old[name]:.2f} | {new[name]:.2f} |" for name in new if name in old),
        "",
    ]
    for clients, profile in after.get("profile", {}).items():
        earlier = before.get("profile", {}).get(clients)
        if not earlier:
            continue
        old_named, new_named = dict(earlier["named"]), dict(profile["named"])
        old_total, new_total = earlier["cpu_ms_per_call"], profile["cpu_ms_per_call"]
        lines += [
            f"Samples per call at {clients} clients (py-spy counts a thread that waits for a core as busy, so on "
            f"a loaded machine these 'ms' are inflated; the share of all samples is the figure to compare): "
            f"{old_total:.2f} ms before, {new_total:.2f} ms after.",
            "",
            "| named frame (inclusive) | before ms/call (share) | after ms/call (share) |",
            "|---|---|---|",
            *(
                f"| {name} | {old_named.get(name, 0.0):.3f} ({old_named.get(name, 0.0) / old_total:.1%}) | "
                f"{new_named.get(name, 0.0):.3f} ({new_named.get(name, 0.0) / new_total:.1%}) |"
                for name in dict.fromkeys([*old_named, *new_named])
            ),
            "",
        ]
    return lines


def p50_p99(times: dict[str, float]) -> str:
    return f"{ms(times['p50'])} / {ms(times['p99'])}"


def _overhead(o: dict[str, Any]) -> list[str]:
    lines = [
        "## Tool-call overhead (sequential calls, one MCP session, interleaved with their floors)",
        "",
        "Floor = a trivial echo tool on a bare `MCPServer` with the same transport settings (a) + the direct "
        f"OpenCode HTTP calls the tool makes (b). Target: gateway ≤ {TARGETS['overhead']} × (a + b) at p50. "
        "Each row is one run's figures, the run with the median p50 ratio (of an even number of runs, the higher middle one); the "
        "spread is that ratio's over all runs.",
        "",
        "| Tool | gateway p50 / p99 ms | SDK echo (a) p50 / p99 | direct OpenCode (b) p50 / p99 "
        "| ratio p50 / p99 | spread of p50 ratio | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for tool, row in o.items():
        lines.append(
            f"| {tool} | {p50_p99(row['gateway'])} | {p50_p99(row['sdk_floor'])} | {p50_p99(row['direct'])} | "
            f"{row['ratio_p50']:.2f} / {row['ratio_p99']:.2f} | "
            f"{spread(row['spread'])} | {target(row['ratio_p50'] <= TARGETS['overhead'])} at p50 |"
        )
    return [*lines, "", *_bare(o)]


def _bare(o: dict[str, Any]) -> list[str]:
    """What any MCP tool making the same OpenCode calls costs here: how much of the ratio above
    is the gateway's own, and how much is a tool calling OpenCode at all."""
    rows = {tool: row for tool, row in o.items() if "bare" in row}
    if not rows:
        return []
    lines = [
        "The same OpenCode calls made by a bare tool (c): a tool on the echo server's bare `MCPServer` that makes "
        "the tool's OpenCode calls with `httpx2` and returns what they answered (`bench/echo_server.py`), timed "
        "in the same rounds. (c) over (a + b) is what calling OpenCode from inside an MCP tool costs on this "
        "machine, before any gateway code; the gateway over (c) is the gateway's own share.",
        "",
        "| Tool | bare tool (c) p50 / p99 ms | (c) / (a + b) at p50 | gateway / (c) at p50 |",
        "|---|---|---|---|",
    ]
    for tool, row in rows.items():
        floor = row["sdk_floor"]["p50"] + row["direct"]["p50"]
        lines.append(
            f"| {tool} | {p50_p99(row['bare'])} | {row['bare']['p50'] / floor:.2f} | {row['bare_ratio_p50']:.2f} |"
        )
    return [*lines, ""]


def _completion(c: dict[str, Any]) -> list[str]:
    return [
        f"## Completion latency ({c['gateway']['n']} tasks a run)",
        "",
        "From the fake LLM's last byte to the MCP client holding the `run_coding_task` result, against the floor: "
        "the same task sent straight to OpenCode and awaited on its own `/event` stream. The row is the run "
        "with the median p50 ratio (of an even number of runs, the higher middle one).",
        "",
        "| | p50 ms | p99 ms |",
        "|---|---|---|",
        f"| gateway | {ms(c['gateway']['p50'])} | {ms(c['gateway']['p99'])} |",
        f"| floor (OpenCode alone) | {ms(c['floor']['p50'])} | {ms(c['floor']['p99'])} |",
        f"| ratio | **{c['ratio_p50']:.2f}** (spread {spread(c['spread'])}; target ≤ {TARGETS['completion']}: "
        f"{target(c['ratio_p50'] <= TARGETS['completion'])}) | {c['ratio_p99']:.2f} |",
        "",
    ]


def _throughput(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Throughput against the echo floor",
        "",
        "`health_check` calls (each reads OpenCode's health) against the echo tool's, the same load side by side: "
        "N clients, each its own MCP session making sequential calls, spread over 2 client processes of their "
        f"own. Target: gateway calls/s ≥ {TARGETS['throughput']} × echo's. CPU per call is the server "
        "process's user + system time over the run divided by its calls.",
        "",
        "| clients | echo calls/s | gateway calls/s | ratio (median) | spread | echo CPU ms/call "
        "| gateway CPU ms/call | CPU ratio (spread) | gateway p50 / p99 ms | errors | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs = row["runs"]
        ratios = [r["ratio"] for r in runs]
        mid = nearest(runs)
        e, g = mid["echo"], mid["gateway"]
        lines.append(
            f"| {row['clients']} | {e['calls_per_s']:.0f} | {g['calls_per_s']:.0f} | **{median(ratios):.2f}** | "
            f"{spread(ratios)} | {e['cpu_ms_per_call']:.2f} | {g['cpu_ms_per_call']:.2f} | "
            f"{median(cpu_ratios(runs)):.2f} ({spread(cpu_ratios(runs))}) | "
            f"{ms(g['p50'])} / {ms(g['p99'])} | {sum(r['gateway']['errors'] for r in runs)} | "
            f"{target(median(ratios) >= TARGETS['throughput'])} |"
        )
    return [*lines, "", *_machine_cpu(rows)]


def _machine_cpu(rows: list[dict[str, Any]]) -> list[str]:
    """On a machine whose cores the clients, the server and OpenCode share, calls/s follow the
    CPU all of them spend per call: the split says how much of a gateway call is OpenCode's."""
    shown = [(row["clients"], nearest(row["runs"])) for row in rows]
    shown = [(n, mid) for n, mid in shown if mid["gateway"].get("behind_cpu_ms_per_call") is not None]
    if not shown:
        return []
    lines = [
        "Where the machine's CPU went per call, in the run shown (user + system time of each process over "
        f"the run, divided by the calls). With every process on the same {os.cpu_count()} cores, echo's total over the "
        "gateway's is about the calls/s ratio such a machine allows; OpenCode's own share of a `health_check` "
        "counts against the gateway in it. Health checks that arrive while one is reading OpenCode's health "
        "share that read (`SingleFlight`), so a call costs OpenCode less than one request under load; the last "
        "column counts them (from the gateway's `ocgw_opencode_request_duration_seconds_count`).",
        "",
        "| clients | echo: server + clients = total ms | gateway: server + OpenCode + clients = total ms "
        "| totals' ratio (echo / gateway) | OpenCode requests per gateway call |",
        "|---|---|---|---|---|",
    ]
    for clients, mid in shown:
        e, g = mid["echo"], mid["gateway"]
        echo_total = e["cpu_ms_per_call"] + e["client_cpu_ms_per_call"]
        parts = (g["cpu_ms_per_call"], g["behind_cpu_ms_per_call"], g["client_cpu_ms_per_call"])
        lines.append(
            f"| {clients} | {e['cpu_ms_per_call']:.2f} + {e['client_cpu_ms_per_call']:.2f} = {echo_total:.2f} | "
            f"{' + '.join(f'{x:.2f}' for x in parts)} = {sum(parts):.2f} | {echo_total / sum(parts):.2f} | "
            f"{_per_call(g.get('opencode_requests_per_call'))} |"
        )
    return [*lines, ""]


def _per_call(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"  # runs recorded before the count was kept


def _sessions(results: dict[str, Any]) -> list[str]:
    s = results["concurrent_sessions"]
    ratios = [r["ratio"] for r in s["runs"]]
    mid = nearest(s["runs"])
    e, g = mid["echo"], mid["gateway"]
    lines = [
        "## Many sessions at once",
        "",
        f"{s['sessions']} clients at once (2 client processes), each opening an MCP session and making one call: "
        f"the call's p50 on the gateway (`health_check`) {ms(g['p50'])} ms against echo's {ms(e['p50'])} ms: "
        f"**{median(ratios):.2f}x** (spread {spread(ratios)}; target ≤ {TARGETS['sessions']}x: "
        f"{target(median(ratios) <= TARGETS['sessions'])}). Opening the session: p50 {ms(g['open_p50'])} ms "
        f"against {ms(e['open_p50'])} ms. Errors {sum(r['gateway']['errors'] for r in s['runs'])}, refused "
        f"{sum(r['gateway']['refused'] for r in s['runs'])}. The gateway's CPU per session (open and call) is "
        f"{median(cpu_ratios(s['runs'])):.2f}x echo's (spread {spread(cpu_ratios(s['runs']))}).",
        "",
    ]
    if "async_tasks" not in results:
        return lines
    a = results["async_tasks"]
    lines += [
        f"{a['tasks']} concurrent `run_coding_task_async` tasks (each a write and an answer): all started in "
        f"{a['started_s']:.1f} s, all done and read back in {a['all_done_s']:.1f} s; {a['completed']} completed, "
        f"{a['errors']} errors; gateway RSS after: {a['gateway_rss_mib']:.0f} MiB.",
        "",
        "MCP sessions held open at once, each after one `health_check` (the bench's gateway sets "
        "`MAX_SESSIONS_PER_CLIENT=500`: the default 100 would refuse the bench's own sessions, by design; a "
        "refusal is counted as such, not as an error):",
        "",
        "| sessions | errors | refused by the quota | gateway RSS MiB | health_check p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["sessions"]:
        lines.append(
            f"| {row['sessions']} | {row['errors']} | {row.get('refused', 0)} | {row['rss_mib']:.0f} | "
            f"{ms(row['p50'])} | {ms(row['p99'])} |"
        )
    return [*lines, ""]


def _progress(p: dict[str, Any]) -> list[str]:
    return [
        f"## Progress delivery ({p['n']} tool events)",
        "",
        "From OpenCode emitting a tool's `running` event (seen on `/global/event`) to the MCP client receiving "
        f"the matching progress notification: p50 {ms(p['p50'])} ms, p99 {ms(p['p99'])} ms (no floor, no target).",
        "",
    ]


def _cold_start(cold: dict[str, Any]) -> list[str]:
    return [
        "## Cold start",
        "",
        f"- Spawn mode, process start to `/readyz` 200: p50 {cold['spawn_to_ready']['p50']:.2f} s, max "
        f"{cold['spawn_to_ready']['p99']:.2f} s (target ≤ 3 s: {target(cold['spawn_to_ready']['p99'] <= 3)}).",
        f"- Gateway alone, process start to `/healthz` 200: p50 {cold['gateway_alone']['p50']:.2f} s.",
        "",
    ]


def _profile(profiles: dict[str, Any]) -> list[str]:
    lines = [
        "## Where a call's CPU goes (py-spy, under load)",
        "",
        "The gateway sampled with py-spy (200 Hz) during an extra throughput run at each client count "
        "(`--profile`; that run counts in no ratio, py-spy takes CPU from the cores the others share). "
        "Sampling itself costs the gateway some CPU, so compare these figures with each other "
        "and with an earlier run's (the before/after table, with `--before`), not with the throughput table. "
        "The leaf frame's package says where the CPU was spent; a named frame counts everything below it.",
        "",
    ]
    for clients, profile in profiles.items():
        lines += [f"{clients} clients:", "", *render_profile(profile)]
    return lines


BEFORE_AFTER = [
    "",
    "The same bench (`--before FILE` renders this table from an earlier run's JSON) on the gateway before "
    "issue #23's changes and after them, each in a run of its own on the same machine; each ratio "
    "is to a floor measured side by side within its own run.",
]
READING = [
    "## Reading the numbers",
    "",
    "- The bench's clients, the gateway, the echo server and OpenCode share the machine's cores (and, on a "
    "shared machine, other jobs' load). Baseline (b) of the overhead section is measured with the gateway "
    "idle, so a gateway call pays for three busy processes where its baseline paid for two.",
    "- Throughput and the many-sessions figures are ratios of the same load against echo, measured one after "
    "the other in the same minute; the spread shows how much the machine moved them.",
    "- What earlier profiling changed (see the git log): requests gated on OpenCode's readiness in spawn mode "
    "(spawn-to-ready 3.8 s -> 1.8 s; a probe used to hit OpenCode's start-up race and hang), OpenCode started "
    "before the gateway's imports, a separate connection pool for the event stream, no JSON parse for discarded "
    "event frames, the idle event standing in for a status read, and no diff request for turns that changed "
    "no file (completion latency 1.95x -> about 1.0x the floor).",
    "",
]
