"""How many OpenCode calls each tool makes, counted on the fake OpenCode.

Each situation runs in a fresh in-memory gateway that has already run one task (so its
agent list and session caches are warm, as in a gateway that has been up a while). What
counts is every request the gateway sends while the tool call runs, plus what its
background work (the permission broker) sends in reaction; the event stream is left out.

`python -m tests.support.call_counts` prints the table; `--write` puts it into
docs/benchmarks.md (section "OpenCode calls per tool"), which tests/memory/test_call_counts.py
checks against a fresh count.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp
from mcp.client.session import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

from tests.support.client import data
from tests.support.fake_opencode import Ask, Hold, Reply, Tool
from tests.support.in_memory import LEGACY, MODERN, InMemoryGateway, in_memory_gateway

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
HEADING = "## 9. OpenCode calls per tool"
PATCH = "--- a/calc.py\n+++ b/calc.py\n@@ -1 +1,2 @@\n x = 1\n+y = 2\n"
Counted = Callable[[], Any]  # an async context manager that counts the calls made inside it
Play = Callable[[InMemoryGateway, mcp.Client, Counted], Awaitable[None]]


@dataclass(frozen=True)
class Situation:
    name: str
    play: Play
    policy: str = "allow"
    mode: str = LEGACY
    elicit: bool = False  # the client answers elicitation (grants once)


SITUATIONS: list[Situation] = []


def situation(name: str, *, policy: str = "allow", mode: str = LEGACY, elicit: bool = False) -> Callable[[Play], Play]:
    def register(play: Play) -> Play:
        SITUATIONS.append(Situation(name, play, policy, mode, elicit))
        return play

    return register


async def finished(c: mcp.Client, gw: InMemoryGateway, *steps: Any) -> dict[str, Any]:
    gw.fake.queue(*steps)
    return data(await c.call_tool("run_coding_task", {"prompt": "Change calc.py"}))


@situation("run_coding_task: new task, answered at once")
async def _run_plain(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
    async with counted():
        await finished(c, gw, Reply("Done."))


@situation("run_coding_task: new task that changes a file")
async def _run_edit(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
    async with counted():
        await finished(c, gw, Tool("edit", {"filePath": "calc.py"}, files={"calc.py": PATCH}), Reply("Done."))


@situation("run_coding_task: follow-up in the same session")
async def _run_follow_up(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
    first = await finished(c, gw, Reply("One."))
    async with counted():
        gw.fake.queue(Reply("Two."))
        await c.call_tool("run_coding_task", {"prompt": "And now?", "task_id": first["task_id"]})


@situation("run_coding_task: new task that ends while the call waits")
async def _run_waited(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
    async with counted(), anyio.create_task_group() as tg:
        since = len(gw.fake.calls)
        gw.fake.queue(Hold(), Reply("Done."))
        tg.start_soon(finished, c, gw)
        # the call has read the task (still running) and follows its events: let the model answer
        await gw.fake.until(lambda: gw.fake.counts(since)["GET /session/{sid}/message"])
        turns = gw.fake.world.turns
        gw.fake.resume(await gw.fake.until(lambda: next((s for s, t in turns.items() if t.waiting == "hold"), None)))


@situation("run_coding_task_async: new task")
async def _run_async(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
    async with counted():
        gw.fake.queue(Hold(), Reply("Done."))
        await c.call_tool("run_coding_task_async", {"prompt": "Change calc.py"})


async def edited(c: mcp.Client, gw: InMemoryGateway) -> dict[str, Any]:
    return await finished(c, gw, Tool("edit", {"filePath": "calc.py"}, files={"calc.py": PATCH}), Reply("Done."))


async def running(c: mcp.Client, gw: InMemoryGateway) -> dict[str, Any]:
    gw.fake.queue(Hold(), Reply("Done."))
    return data(await c.call_tool("run_coding_task_async", {"prompt": "Change calc.py"}))


def on_task(name: str, prepare: Callable[[mcp.Client, InMemoryGateway], Awaitable[dict[str, Any]]], tool: str) -> None:
    """A situation where `tool` is called on a task `prepare` made; the name's `key=value` are arguments."""
    arguments = {k: float(v) for k, v in re.findall(r"(\w+)=(\d+)", name)}

    async def play(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
        task = await prepare(c, gw)
        async with counted():
            await c.call_tool(tool, {"task_id": task["task_id"], **arguments})

    situation(name)(play)


async def stepping(c: mcp.Client, gw: InMemoryGateway) -> dict[str, Any]:
    gw.fake.queue(Tool("read", {"filePath": "calc.py"}), Hold(), Reply("Done."))
    started = data(await c.call_tool("run_coding_task_async", {"prompt": "Change calc.py"}))
    await gw.fake.held()
    return started


on_task("get_task_status: running task", running, "get_task_status")
on_task("get_task_status: running task past its first step", stepping, "get_task_status")
on_task("get_task_status: finished task that changed a file", edited, "get_task_status")
on_task("get_task_status wait_seconds=5: finished task that changed a file", edited, "get_task_status")
on_task("get_task_messages", edited, "get_task_messages")
on_task("get_task_diff", edited, "get_task_diff")
on_task("abort_task: running task", running, "abort_task")


@situation("get_task_status: running task past its first step (PERMISSION_POLICY=ask)", policy="ask")
async def _stepping_asking(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
    task = await stepping(c, gw)
    async with counted():
        await c.call_tool("get_task_status", {"task_id": task["task_id"]})


@situation("respond_to_task: one permission (PERMISSION_POLICY=ask)", policy="ask")
async def _respond(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
    waiting = await finished(c, gw, Ask(), Reply("Done."))
    async with counted():
        request = {"task_id": waiting["task_id"], "request_id": waiting["pending"][0]["id"], "reply": "once"}
        await c.call_tool("respond_to_task", request)


@situation("run_coding_task: one permission answered by elicitation (2025-11-25)", policy="ask", elicit=True)
async def _elicit_legacy(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
    async with counted():
        await finished(c, gw, Ask(), Reply("Done."))


@situation(
    "run_coding_task: one permission answered through input-required (2026-07-28)",
    policy="ask",
    mode=MODERN,
    elicit=True,
)
async def _elicit_modern(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
    async with counted():
        await finished(c, gw, Ask(), Reply("Done."))


@situation("list_agents")
async def _agents(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
    async with counted():
        await c.call_tool("list_agents", {})


@situation("health_check")
async def _health(gw: InMemoryGateway, c: mcp.Client, counted: Counted) -> None:
    async with counted():
        await c.call_tool("health_check", {})


async def grant_once(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"decision": "once"})


async def count(s: Situation) -> Counter[str]:
    found: Counter[str] = Counter()
    async with (
        in_memory_gateway(permission_policy=s.policy) as gw,
        gw.mcp(s.mode, elicitation_callback=grant_once if s.elicit else None) as c,
    ):
        await finished(c, gw, Reply("Warm-up."))

        @asynccontextmanager
        async def counted() -> AsyncIterator[None]:
            await anyio.sleep(0.02)  # the broker's reactions to what came before do not count
            since = len(gw.fake.calls)
            yield
            await anyio.sleep(0.02)  # what the broker does in reaction belongs to the call
            found.update(gw.fake.counts(since))

        await s.play(gw, c, counted)
    return found


async def count_all() -> dict[str, Counter[str]]:
    return {s.name: await count(s) for s in SITUATIONS}


def table(counts: dict[str, Counter[str]]) -> str:
    rows = [
        HEADING,
        "",
        "Counted on the in-memory fake OpenCode (`python -m tests.support.call_counts --write`; "
        "tests/memory/test_call_counts.py checks this table), caches warm (the gateway has run a task "
        "before). Section 10 keeps the counts from before issue #14's changes to compare.",
        "",
        "| Tool, situation | calls | by route |",
        "|---|---|---|",
    ]
    for name, calls in counts.items():
        routes = ", ".join(f"`{route}` x{n}" for route, n in sorted(calls.items()))
        rows.append(f"| {name} | {sum(calls.values())} | {routes} |")
    return "\n".join(rows) + "\n"


def documented(text: str) -> dict[str, int]:
    """The call totals the table in docs/benchmarks.md states."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^\| (.+?) \| (\d+) \|", section(text), re.MULTILINE)}


def section(text: str) -> str:
    """The call-count section of a benchmarks.md text ("" if it has none)."""
    if HEADING not in text:
        return ""
    rest = HEADING + text.split(HEADING, 1)[1]
    end = rest.find("\n## ")
    return rest if end < 0 else rest[: end + 1]


def write(counts: dict[str, Counter[str]]) -> None:
    text = DOC.read_text()
    old = section(text)
    DOC.write_text(text.replace(old, table(counts)) if old else text.rstrip("\n") + "\n\n" + table(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description="OpenCode calls per tool, counted on the fake OpenCode")
    parser.add_argument("--write", action="store_true", help=f"update the table in {DOC.name}")
    counts = anyio.run(count_all)
    if parser.parse_args().write:
        write(counts)
    print(table(counts))


if __name__ == "__main__":
    main()
