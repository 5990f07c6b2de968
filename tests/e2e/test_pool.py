"""Three gateway replicas and a pool of two real `opencode serve` workers (each with its own
state and workspace) behind a plain round-robin balancer: tasks spread over the workers,
every tool reaches either worker from any replica in both protocol eras, placement limits,
a worker killed and restarted, and task ids from before the pool still meaning `w0`."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.session import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

from tests.e2e.test_replicas import ERAS, TASK_ID, Progress, Replicas, call_then_cancel, connect, outside_file
from tests.support.client import data, error_text, script
from tests.support.fake_llm import FakeLLM
from tests.support.procs import OpenCodeServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def worker_of(task_id: str) -> str:
    return task_id.split(":", 1)[0] if ":" in task_id else "w0"


class Pool:
    """Workers w0 and w1, and replicas of the gateway pointed at both."""

    def __init__(self, root: Path, llm_url: str) -> None:
        self.root = root
        self.workers = {f"w{i}": OpenCodeServer(root / f"w{i}", llm_url) for i in range(2)}

    def start(self) -> Pool:
        for worker in self.workers.values():
            worker.start()
        return self

    def replicas(self, name: str, **env: str) -> Replicas:
        listed = ",".join(f"{n}={w.url}" for n, w in self.workers.items())
        return Replicas(self.root / name, self.workers["w0"], {"OPENCODE_WORKERS": listed, **env}).start()

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeLLM) -> Iterator[Pool]:
    workers = Pool(tmp_path_factory.mktemp("pool"), fake_llm.url).start()  # type: ignore[attr-defined]
    yield workers
    workers.stop()


@pytest.fixture(scope="module")
def trio(pool: Pool) -> Iterator[Replicas]:
    replicas = pool.replicas("trio", PERMISSION_POLICY="ask", WORKER_MAX_TASKS="8")
    yield replicas
    replicas.stop()


async def one_task_per_worker(c: Any, tag: str) -> dict[str, dict[str, Any]]:
    """Completed tasks, one on each worker: tasks that stay busy a moment, started one by
    one, until placement has used both workers (the least loaded takes the next)."""
    found: dict[str, dict[str, Any]] = {}
    for n in range(6):
        started = data(
            await c.call_tool("run_coding_task_async", {"prompt": script({"text": f"{tag} {n}", "hang": 2})})
        )
        found.setdefault(worker_of(started["task_id"]), started)
        if len(found) == 2:
            break
        await anyio.sleep(1.0)  # the worker's busy event reaches every replica
    assert set(found) == {"w0", "w1"}, found
    for worker, started in found.items():
        done = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30}))
        assert done["status"] == "completed", done
        found[worker] = done
    return found


@ERAS
async def test_tasks_spread_over_the_workers_and_every_tool_reaches_them(
    trio: Replicas, pool: Pool, protocol: str
) -> None:
    async with connect(trio.mcp_url, protocol) as c:

        async def call(tool: str, args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            return data(await c.call_tool(tool, args, **kwargs))

        started = []
        for n in range(4):
            name = f"spread_{protocol}_{n}.txt"
            prompt = script(
                {"tool": "write", "args": {"filePath": name, "content": f"{n}\n"}, "hang": 2}, {"text": f"wrote {n}"}
            )
            started.append((name, await call("run_coding_task_async", {"prompt": prompt})))
            await anyio.sleep(1.0)
        placed = [worker_of(s["task_id"]) for _, s in started]
        assert set(placed) == {"w0", "w1"}, placed  # the least-loaded worker takes each new task
        for worker in ("w0", "w1"):
            n, (name, first) = next((n, s) for n, s in enumerate(started) if worker_of(s[1]["task_id"]) == worker)
            task_id = first["task_id"]
            other = pool.workers["w1" if worker == "w0" else "w0"]
            if worker == "w0":
                assert TASK_ID.fullmatch(task_id) and task_id.startswith("ses_")  # the form ids always had
            else:
                assert task_id.startswith("w1:ses_")
            done = await call("get_task_status", {"task_id": task_id, "wait_seconds": 30})
            assert done["status"] == "completed" and done["result"] == f"wrote {n}", done
            # the work happened in that worker's workspace
            assert (pool.workers[worker].workspace / name).exists() and not (other.workspace / name).exists()
            messages = await call("get_task_messages", {"task_id": task_id})
            assert [m["role"] for m in messages["messages"]][:2] == ["user", "assistant"]
            diff = await call("get_task_diff", {"task_id": task_id})
            # (a task running beside it in the same directory may show in OpenCode's snapshot diff)
            assert name in [f["path"] for f in diff["files"]], diff
            progress = Progress()
            follow = await call(
                "run_coding_task",
                {"prompt": script({"text": "again", "hang": 1}), "task_id": task_id, "timeout_seconds": 60},
                progress_callback=progress,
            )
            assert follow["status"] == "completed" and follow["result"] == "again", follow
            assert worker_of(follow["task_id"]) == worker and follow["session_id"] == done["session_id"]
            assert progress.messages and follow["task_id"] in progress.messages[0]
            assert (await call("abort_task", {"task_id": task_id}))["aborted"] is False
            hanging = await call(
                "run_coding_task_async", {"prompt": script({"text": "x", "hang": 60}), "task_id": task_id}
            )
            aborted = await call("abort_task", {"task_id": hanging["task_id"]})
            assert aborted["aborted"] is True and aborted["status"] == "aborted"
        listed = {t["task_id"] for t in (await call("list_tasks", {"limit": 100}))["tasks"]}
        assert {worker_of(t) for t in listed} == {"w0", "w1"}
        health = await call("health_check", {})
        assert [(w["name"], w["healthy"]) for w in health["workers"]] == [("w0", True), ("w1", True)]
        assert (await call("list_agents", {}))["agents"]


@ERAS
async def test_client_cancel_aborts_a_task_on_either_worker(trio: Replicas, protocol: str) -> None:
    cancelled: set[str] = set()
    async with connect(trio.mcp_url, protocol) as c:
        for _ in range(8):
            task_id = await call_then_cancel(c, script({"text": "never", "hang": 60}))
            status = data(await c.call_tool("get_task_status", {"task_id": task_id, "wait_seconds": 20}))
            assert status["status"] == "aborted", status
            cancelled.add(worker_of(task_id))
            if cancelled == {"w0", "w1"}:
                break
    assert cancelled == {"w0", "w1"}


async def test_permission_elicitation_reaches_either_worker_in_both_eras(
    trio: Replicas, pool: Pool, tmp_path: Path
) -> None:
    async def approve(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="accept", content={"decision": "once"})

    for protocol in ("2025", "2026"):
        async with connect(trio.mcp_url, protocol, elicitation=approve) as c:
            for worker, task in (await one_task_per_worker(c, f"perm {protocol}")).items():
                target = outside_file(tmp_path)
                prompt = script({"tool": "write", "args": {"filePath": str(target), "content": "ok\n"}}, {"text": "ok"})
                done = data(
                    await c.call_tool(
                        "run_coding_task", {"prompt": prompt, "task_id": task["task_id"], "timeout_seconds": 60}
                    )
                )
                assert done["status"] == "completed" and worker_of(done["task_id"]) == worker, done
                assert target.read_text() == "ok\n"


async def test_ids_name_only_configured_workers_and_old_ids_mean_w0(trio: Replicas) -> None:
    async with connect(trio.mcp_url, "2026") as c:
        tasks = await one_task_per_worker(c, "ids")
        old = tasks["w0"]["task_id"]
        explicit = data(await c.call_tool("get_task_status", {"task_id": f"w0:{old}"}))
        assert explicit["task_id"] == old and explicit["status"] == "completed"
        session = tasks["w1"]["task_id"].removeprefix("w1:")
        unprefixed = await c.call_tool("get_task_status", {"task_id": session})  # w1's session asked of w0
        assert unprefixed.is_error and "unknown task_id" in error_text(unprefixed)
        elsewhere = await c.call_tool("get_task_status", {"task_id": f"w7:{old}"})
        assert elsewhere.is_error and "no OpenCode worker w7" in error_text(elsewhere)


async def test_placement_limit_waits_then_fails_retryably_or_runs_once_a_slot_frees(pool: Pool) -> None:
    tight = pool.replicas("tight", WORKER_MAX_TASKS="1", SCHEDULE_WAIT_SECONDS="4")
    try:
        async with connect(tight.mcp_url, "2025") as c:
            holders = []
            for n in range(2):
                holders.append(
                    data(await c.call_tool("run_coding_task_async", {"prompt": script({"text": f"h{n}", "hang": 60})}))
                )
                await anyio.sleep(1.5)
            assert {worker_of(h["task_id"]) for h in holders} == {"w0", "w1"}
            started = time.monotonic()
            full = await c.call_tool("run_coding_task_async", {"prompt": script({"text": "no room"})})
            assert full.is_error, "a third task was placed past WORKER_MAX_TASKS=1 on both workers"
            assert time.monotonic() - started >= 3.5
            text = error_text(full)
            assert "WORKER_MAX_TASKS=1" in text and "SCHEDULE_WAIT_SECONDS=4" in text and "try again" in text

            progress = Progress()
            async with anyio.create_task_group() as tg:

                async def free_a_slot() -> None:
                    while not any("waiting up to" in m for m in progress.messages):
                        await anyio.sleep(0.1)
                    await c.call_tool("abort_task", {"task_id": holders[1]["task_id"]})

                tg.start_soon(free_a_slot)
                done = data(
                    await c.call_tool(
                        "run_coding_task",
                        {"prompt": script({"text": "ran after the wait"}), "timeout_seconds": 60},
                        progress_callback=progress,
                    )
                )
            assert done["status"] == "completed" and done["result"] == "ran after the wait"
            assert worker_of(done["task_id"]) == worker_of(holders[1]["task_id"])
            assert "All 2 workers (w0, w1) are running WORKER_MAX_TASKS=1" in progress.messages[0]
            await c.call_tool("abort_task", {"task_id": holders[0]["task_id"]})
    finally:
        tight.stop()


async def test_respond_to_task_answers_a_permission_on_either_worker(trio: Replicas, tmp_path: Path) -> None:
    async with connect(trio.mcp_url, "2025") as c:  # a client that cannot be asked: it answers by tool
        for worker, task in (await one_task_per_worker(c, "respond")).items():
            target = outside_file(tmp_path)
            prompt = script({"tool": "write", "args": {"filePath": str(target), "content": "r\n"}}, {"text": "ok"})
            started = data(await c.call_tool("run_coding_task_async", {"prompt": prompt, "task_id": task["task_id"]}))
            waiting = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30}))
            assert waiting["status"] == "waiting_for_input" and worker_of(waiting["task_id"]) == worker, waiting
            answered = data(
                await c.call_tool(
                    "respond_to_task",
                    {"task_id": started["task_id"], "request_id": waiting["pending"][0]["id"], "reply": "once"},
                )
            )
            assert answered["answered"] is True
            done = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30}))
            assert done["status"] == "completed" and target.read_text() == "r\n", done


async def test_a_worker_killed_and_restarted(trio: Replicas, pool: Pool) -> None:
    async with connect(trio.mcp_url, "2025") as c:
        tasks = await one_task_per_worker(c, "survivor")
        on_w1 = tasks["w1"]
        pool.workers["w1"].kill()
        try:
            for _ in range(3):  # whichever replica answers
                down = await c.call_tool("get_task_status", {"task_id": on_w1["task_id"]})
                assert down.is_error, down
                text = error_text(down)
                assert "worker w1" in text and "unknown task" not in text, text
            for gateway in trio.gateways:  # w0 still answers: every replica stays ready
                assert httpx2.get(gateway.url + "/readyz", timeout=5).status_code == 200
            health = data(await c.call_tool("health_check", {}))
            assert [(w["name"], w["healthy"]) for w in health["workers"]] == [("w0", True), ("w1", False)]
            await anyio.sleep(1.0)  # every replica has seen w1's event stream end
            for n in range(3):
                new = data(await c.call_tool("run_coding_task_async", {"prompt": script({"text": f"n{n}"})}))
                assert worker_of(new["task_id"]) == "w0", new
        finally:
            pool.workers["w1"].start()
        with anyio.fail_after(60):
            while True:
                back = await c.call_tool("get_task_status", {"task_id": on_w1["task_id"]})
                if not back.is_error:
                    break
                await anyio.sleep(0.5)
        again = data(back)
        assert again["status"] == "completed" and again["result"] == on_w1["result"]
        # and w1 takes new tasks again within seconds (each placed one keeps w0 the busier)
        placed: list[str] = []
        with anyio.move_on_after(20):
            while "w1" not in placed:
                new = data(await c.call_tool("run_coding_task_async", {"prompt": script({"text": "b", "hang": 5})}))
                placed.append(worker_of(new["task_id"]))
                await anyio.sleep(1.0)
        assert "w1" in placed, f"w1 took no new task for 20 s after it was back: {placed}"


async def test_a_stopping_replicas_worker_takes_no_new_task_but_serves_its_own(pool: Pool) -> None:
    """g1 hosts w1 (as a pod of the chart hosts its worker). Once g1 gets SIGTERM, every
    replica places new tasks on w0 only, while w1's running task stays readable and can be
    followed up, and g1 itself keeps answering through the balancer while it drains."""
    replicas = pool.replicas("drain", WORKER_GATEWAYS="w0=g0,w1=g1", SHUTDOWN_DRAIN_SECONDS="120", WORKER_MAX_TASKS="8")
    try:
        async with connect(replicas.mcp_url, "2026") as c:
            running: dict[str, str] = {}
            for n in range(6):  # a long task on each worker: the least loaded takes the next
                prompt = script({"text": f"long {n}", "hang": 12})
                started = data(await c.call_tool("run_coding_task_async", {"prompt": prompt}))
                running.setdefault(worker_of(started["task_id"]), started["task_id"])
                if len(running) == 2:
                    break
                await anyio.sleep(1.0)
            assert set(running) == {"w0", "w1"}, running
            g1 = replicas.gateways[1]
            assert g1.proc is not None
            g1.proc.send_signal(signal.SIGTERM)
            ready = httpx2.get(g1.url + "/readyz", timeout=5)
            assert ready.status_code == 503 and "stopping" in ready.text, ready.text
            await anyio.sleep(1.5)  # every replica has asked g1's /readyz since
            placed = []
            for n in range(6):  # w0 holds one task and w1 one: w1 would take half of them
                new = data(await c.call_tool("run_coding_task_async", {"prompt": script({"text": f"new {n}"})}))
                placed.append(worker_of(new["task_id"]))
            assert placed == ["w0"] * 6, placed
            assert g1.proc.poll() is None  # still serving: a third of these calls went through it
            done = data(await c.call_tool("get_task_status", {"task_id": running["w1"], "wait_seconds": 60}))
            assert done["status"] == "completed" and done["result"].startswith("long "), done
            follow = data(
                await c.call_tool("run_coding_task", {"prompt": script({"text": "again"}), "task_id": running["w1"]})
            )
            assert worker_of(follow["task_id"]) == "w1" and follow["result"] == "again", follow
    finally:
        replicas.stop()  # a second SIGTERM ends g1's drain at once
