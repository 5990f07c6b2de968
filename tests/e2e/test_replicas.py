"""Several gateway replicas behind a plain round-robin balancer (no affinity), one real
`opencode serve`: every tool, in both protocol eras, with zero errors; a 2025 cancel or
elicitation answer that lands on another replica; a 2026 input-required retry that does;
a replica killed mid-task."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import ElicitRequestParams, ElicitResult

from tests.support.balancer import RoundRobin
from tests.support.client import data, mcp_session, script
from tests.support.procs import Gateway, OpenCodeServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
TASK_ID = re.compile(r"(?:w\d+:)?ses_\w+\.msg_\w+")  # a worker prefix on workers other than w0


class Replicas:
    """Gateways g0..gN-1 that know each other, behind one round-robin balancer."""

    def __init__(self, root: Path, opencode: OpenCodeServer, env: dict[str, str] | None = None, count: int = 3) -> None:
        self.gateways = [Gateway(root / f"g{i}", {}) for i in range(count)]
        peers = ",".join(f"g{i}={g.url}" for i, g in enumerate(self.gateways))
        key = secrets.token_hex(32)
        for i, gateway in enumerate(self.gateways):
            gateway.env.update(
                {
                    "OPENCODE_BASE_URL": opencode.url,
                    "GATEWAY_ID": f"g{i}",
                    "GATEWAY_PEERS": peers,
                    "REQUEST_STATE_KEY": key,
                    # the balancer is the Host clients use
                    "ALLOWED_HOSTS": "127.0.0.1,localhost",
                    **(env or {}),
                }
            )
        self.balancer = RoundRobin([g.url for g in self.gateways])

    def start(self) -> Replicas:
        for gateway in self.gateways:
            gateway.start()
        self.balancer.start()
        return self

    def stop(self) -> None:
        self.balancer.stop()
        for gateway in self.gateways:
            gateway.stop()

    @property
    def mcp_url(self) -> str:
        return self.balancer.url + "/mcp"

    def owner(self, session_id: str) -> str:
        """The backend URL of the replica that holds a 2025-era session."""
        return self.gateways[int(session_id.split(".")[0].removeprefix("g"))].url


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, opencode: OpenCodeServer) -> Iterator[Replicas]:
    trio = Replicas(tmp_path_factory.mktemp("replicas"), opencode, {"PERMISSION_POLICY": "ask"}).start()
    yield trio
    trio.stop()


@asynccontextmanager
async def connect(url: str, protocol: str, **kwargs: Any) -> AsyncIterator[Any]:
    if protocol == "2025":
        async with mcp_session(url, elicitation=kwargs.get("elicitation")) as session:
            assert session.protocol_version == "2025-11-25"
            yield session
    else:
        async with mcp.Client(url, elicitation_callback=kwargs.get("elicitation")) as client:
            assert client.session.protocol_version == "2026-07-28"
            yield client


class Progress:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def __call__(self, value: float, total: float | None, message: str | None) -> None:
        self.messages.append(message or "")


def write(name: str, content: str, then: str = "done", delay: float = 0) -> str:
    return script({"tool": "write", "args": {"filePath": name, "content": content}, "delay": delay}, {"text": then})


def outside_file(tmp_path: Path) -> Path:
    folder = tmp_path / f"outside-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    return folder / "out.txt"


ERAS = pytest.mark.parametrize("protocol", ["2025", "2026"])


@ERAS
async def test_every_tool_through_a_round_robin_balancer(replicas: Replicas, protocol: str) -> None:
    calls = 0
    async with connect(replicas.mcp_url, protocol) as c:

        async def call(tool: str, args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            return data(await c.call_tool(tool, args, **kwargs))

        for round_ in range(3):
            name = f"rr_{protocol}_{round_}.txt"
            progress = Progress()
            done = await call(
                "run_coding_task", {"prompt": write(name, "one\n"), "timeout_seconds": 60}, progress_callback=progress
            )
            assert done["status"] == "completed" and done["result"] == "done", done
            assert progress.messages and done["task_id"] in progress.messages[0]
            started = await call("run_coding_task_async", {"prompt": script({"text": "async ok", "hang": 1})})
            polled = await call("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30})
            assert polled["status"] == "completed" and polled["result"] == "async ok"
            messages = await call("get_task_messages", {"task_id": done["task_id"]})
            assert [m["role"] for m in messages["messages"]][:2] == ["user", "assistant"]
            diff = await call("get_task_diff", {"task_id": done["task_id"]})
            assert [f["path"] for f in diff["files"]] == [name]
            follow = await call(
                "run_coding_task",
                {"prompt": script({"text": "again"}), "task_id": done["task_id"], "timeout_seconds": 60},
            )
            assert follow["status"] == "completed" and follow["session_id"] == done["session_id"]
            aborted = await call("abort_task", {"task_id": done["task_id"]})
            assert aborted["aborted"] is False
            assert (await call("list_agents", {}))["agents"]
            assert (await call("health_check", {}))["opencode"]["healthy"] is True
    assert calls == 27
    assert len(replicas.balancer.hits) == 3, replicas.balancer.hits


async def test_a_2025_session_is_served_by_every_replica(replicas: Replicas) -> None:
    """Requests of one 2025-era session land on all three replicas; the ones that land
    elsewhere are relayed to the replica holding the session."""
    before = len(replicas.balancer.routed)
    async with connect(replicas.mcp_url, "2025") as s:
        for _ in range(6):
            assert (await s.call_tool("health_check", {})).is_error is False
    mine = [r for r in replicas.balancer.routed[before:] if r.session_id]
    owner = replicas.owner(mine[0].session_id)  # type: ignore[arg-type]
    assert {r.backend for r in mine} == {g.url for g in replicas.gateways}
    assert any(r.backend != owner for r in mine)


async def call_then_cancel(c: Any, prompt: str) -> str:
    """Start a blocking call, cancel it once its first progress names the task; the task id."""
    progress = Progress()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await c.call_tool("run_coding_task", {"prompt": prompt}, progress_callback=progress)

            tg.start_soon(call)
            while not progress.messages:
                await anyio.sleep(0.05)
            await anyio.sleep(0.5)
            tg.cancel_scope.cancel()
    return TASK_ID.search(progress.messages[0]).group(0)  # type: ignore[union-attr]


@ERAS
async def test_client_cancel_aborts_whichever_replica_the_cancel_reaches(replicas: Replicas, protocol: str) -> None:
    relayed = False
    for _ in range(4):  # round robin decides where the cancel lands; go on until one lands elsewhere
        before = len(replicas.balancer.routed)
        async with connect(replicas.mcp_url, protocol) as c:
            task_id = await call_then_cancel(c, script({"text": "never", "hang": 60}))
            status = data(await c.call_tool("get_task_status", {"task_id": task_id, "wait_seconds": 20}))
        assert status["status"] == "aborted", status
        if protocol == "2026":
            return  # closing the stream is the cancel: it ends where the stream is
        cancels = [r for r in replicas.balancer.routed[before:] if r.rpc == "notifications/cancelled"]
        assert cancels, "the client sent no notifications/cancelled"
        relayed = relayed or cancels[0].backend != replicas.owner(cancels[0].session_id)  # type: ignore[arg-type]
        if relayed:
            break
    assert relayed, "no cancel landed on a replica other than the session's"


async def test_2025_elicitation_answer_reaches_the_asking_replica(replicas: Replicas, tmp_path: Path) -> None:
    asked: list[str] = []

    async def approve(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"decision": "once"})

    relayed = False
    for _ in range(4):
        before = len(replicas.balancer.routed)
        target = outside_file(tmp_path)
        prompt = script({"tool": "write", "args": {"filePath": str(target), "content": "x\n"}}, {"text": "ok"})
        async with connect(replicas.mcp_url, "2025", elicitation=approve) as s:
            done = data(await s.call_tool("run_coding_task", {"prompt": prompt, "timeout_seconds": 60}))
        assert done["status"] == "completed" and target.read_text() == "x\n", done
        answers = [r for r in replicas.balancer.routed[before:] if r.rpc == "response"]
        assert answers, "the elicitation answer never went through the balancer"
        relayed = relayed or answers[0].backend != replicas.owner(answers[0].session_id)  # type: ignore[arg-type]
        if relayed:
            break
    assert relayed and asked


async def test_2026_input_required_retry_resumes_on_another_replica(replicas: Replicas, tmp_path: Path) -> None:
    async def approve(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="accept", content={"decision": "once"})

    elsewhere = False
    async with connect(replicas.mcp_url, "2026", elicitation=approve) as c:
        for _ in range(4):
            before = len(replicas.balancer.routed)
            target = outside_file(tmp_path)
            prompt = script({"tool": "write", "args": {"filePath": str(target), "content": "y\n"}}, {"text": "ok"})
            done = data(await c.call_tool("run_coding_task", {"prompt": prompt, "timeout_seconds": 60}))
            assert done["status"] == "completed" and target.read_text() == "y\n", done
            calls = [r for r in replicas.balancer.routed[before:] if r.rpc == "tools/call"]
            first, retries = calls[0], [r for r in calls if r.has_request_state]
            assert retries, "the client never retried with requestState"
            elsewhere = elsewhere or any(r.backend != first.backend for r in retries)
            if elsewhere:
                break
    assert elsewhere


async def test_another_client_reads_and_aborts_a_task(replicas: Replicas) -> None:
    async with connect(replicas.mcp_url, "2025") as a:
        started = data(await a.call_tool("run_coding_task_async", {"prompt": script({"text": "x", "hang": 60})}))
    async with connect(replicas.mcp_url, "2026") as b:
        status = data(await b.call_tool("get_task_status", {"task_id": started["task_id"]}))
        assert status["status"] == "running"
        aborted = data(await b.call_tool("abort_task", {"task_id": started["task_id"]}))
        assert aborted["aborted"] is True and aborted["status"] == "aborted"


async def test_a_replica_killed_mid_task_loses_no_task(tmp_path: Path, opencode: OpenCodeServer) -> None:
    trio = Replicas(tmp_path, opencode).start()
    try:
        progress = Progress()
        async with connect(trio.mcp_url, "2025") as s:
            await s.call_tool("health_check", {})
            session_id = next(r.session_id for r in trio.balancer.routed if r.session_id)
            killed = next(g for g in trio.gateways if g.url == trio.owner(session_id))

            async def kill_soon() -> None:
                while not progress.messages:
                    await anyio.sleep(0.1)
                assert killed.proc is not None
                killed.proc.kill()

            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_soon)
                # The call in flight ends for its client: the replica holding it is gone.
                with anyio.fail_after(30), pytest.raises(MCPError, match="stream ended"):
                    await s.call_tool(
                        "run_coding_task",
                        {"prompt": script({"text": "finished anyway", "hang": 4})},
                        progress_callback=progress,
                    )
        task_id = TASK_ID.search(progress.messages[0]).group(0)  # type: ignore[union-attr]
        async with connect(trio.mcp_url, "2025") as s:  # a new session, on the replicas left
            final = data(await s.call_tool("get_task_status", {"task_id": task_id, "wait_seconds": 30}))
        assert final["status"] == "completed" and final["result"] == "finished anyway"
    finally:
        trio.stop()
