"""A static pool's worker that was stopped and started again takes new tasks again within
seconds, even when the gateway's first reconnect lands in OpenCode's first moments (the port
takes connections a while before OpenCode answers, and a request taken then is never
answered: opencode-api.md, "Startup race"), and its first task is not lost to the moment a
fresh instance takes to store a prompt. Issue 19, "Also"."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from opencode_mcp_gateway.config import Settings
from opencode_mcp_gateway.fleet import TaskPool, Worker, build_worker
from opencode_mcp_gateway.opencode import EventHub, OpenCodeClient
from opencode_mcp_gateway.tasks import TaskRequest
from tests.support.client import data
from tests.support.fake_opencode import FakeOpenCode
from tests.support.fake_opencode.server import EVENT_ROUTE
from tests.support.fake_opencode.steps import Hold
from tests.support.in_memory import in_memory_gateway

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def two_workers(fakes: dict[str, FakeOpenCode]) -> AsyncIterator[TaskPool]:
    settings = Settings(_env_file=None, opencode_workers=",".join(f"{n}=http://{n}.test" for n in fakes))  # type: ignore[call-arg]
    workers: list[Worker] = []
    for name, fake in fakes.items():
        client = OpenCodeClient(f"http://{name}.test", transport=fake.transport, worker=name)
        workers.append(build_worker(settings, name, client, EventHub(client)))
    async with anyio.create_task_group() as tg:
        for worker in workers:  # what placement needs of a worker's background work
            tg.start_soon(worker.hub.run)
            tg.start_soon(worker.load.run)
        for worker in workers:
            assert await worker.hub.wait_connected(5)
        yield TaskPool(settings, workers)
        tg.cancel_scope.cancel()
    for worker in workers:
        await worker.client.aclose()


async def place(pool: TaskPool, fakes: dict[str, FakeOpenCode]) -> str:
    """A new task that keeps running on w0 (so w0 is the busier once w1 answers): its worker."""
    fakes["w0"].queue(Hold())
    return (await pool.submit(TaskRequest(prompt="work"))).worker


async def test_a_restarted_worker_takes_new_tasks_again_within_seconds() -> None:
    fakes = {"w0": FakeOpenCode(), "w1": FakeOpenCode()}
    async with two_workers(fakes) as pool:
        w1 = pool.workers["w1"]
        fakes["w1"].down = True  # w1 stops: its stream ends, new connections are refused
        fakes["w1"].cut_stream()
        await fakes["w1"].until(lambda: not w1.hub.connected)
        assert await place(pool, fakes) == "w0"

        fakes["w1"].down, fakes["w1"].starting = False, True  # w1 starts again
        attempts = fakes["w1"].calls.count(EVENT_ROUTE)
        await fakes["w1"].until(lambda: fakes["w1"].calls.count(EVENT_ROUTE) > attempts, timeout=10)
        fakes["w1"].starting = False  # the reconnect was taken in w1's first moments; now it answers
        back = time.monotonic()

        placed = [await place(pool, fakes)]
        with anyio.move_on_after(15):
            while placed[-1] != "w1":
                await anyio.sleep(0.2)
                placed.append(await place(pool, fakes))
        assert placed[-1] == "w1", f"w1 took no new task for 15 s after it answered again: {placed}"
        assert time.monotonic() - back < 10, "w1 came back, but only after the event stream's silence timeout"


@pytest.mark.parametrize("blocking", [False, True])
async def test_the_first_task_on_a_fresh_instance_is_not_an_unknown_task(blocking: bool) -> None:
    """A fresh OpenCode answers prompt_async before its user message can be read back."""
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.prompt_lag = 2  # two reads of the session do not show the prompt yet
        tool = "run_coding_task" if blocking else "run_coding_task_async"
        started = data(await c.call_tool(tool, {"prompt": "first after a restart"}))
        assert started["status"] in ("running", "completed"), started
        done = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 5}))
        assert done["status"] == "completed" and done["result"] == "Done.", done
        unknown = await c.call_tool(
            "get_task_status", {"task_id": f"{started['session_id']}.msg_000000000000abcdefghijklmn"}
        )
        assert unknown.is_error  # an id that is not recent is still unknown at once
