"""Waiting for a task through the event stream: gaps, resyncs, outages, keep-alives, cancellation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from opencode_mcp_gateway.opencode import Subscription
from opencode_mcp_gateway.tasks import waiter as waiter_module
from tests.support.client import ProgressLines, data, error_text
from tests.support.fake_opencode import Ask, Hold, Reply
from tests.support.in_memory import LEGACY, MODERN, InMemoryGateway, in_memory_gateway

pytestmark = pytest.mark.anyio


async def while_running(
    gw: InMemoryGateway,
    arguments: dict[str, Any],
    meanwhile: Callable[[str, ProgressLines], Awaitable[None]],
    **kw: Any,
) -> Any:
    """Call run_coding_task (its turn paused on a Hold), run `meanwhile(session, progress)` once the call
    waits on the session's events, and return the call's result (None if `meanwhile` cancelled it)."""
    progress, result = ProgressLines(), []
    async with gw.mcp(**kw) as c, anyio.create_task_group() as tg:

        async def call() -> None:
            result.append(await c.call_tool("run_coding_task", arguments, progress_callback=progress))

        tg.start_soon(call)
        session = await gw.fake.held()
        await gw.fake.until(lambda: progress.lines)
        with anyio.fail_after(10):
            await meanwhile(session, progress)
    return result[0] if result else None


async def test_a_missed_completion_is_found_after_a_resync() -> None:
    """With events lost and no keep-alive due for a minute, only the resync makes the call look again."""
    async with in_memory_gateway(progress_interval_seconds=60) as gw:
        gw.fake.queue(Hold(), Reply("found it"))

        async def lose_the_end(session: str, _: ProgressLines) -> None:
            gw.fake.muted = True
            gw.fake.resume(session)
            gw.fake.muted = False
            gw.hub.dispatch({"type": "gateway.resync", "properties": {}})

        done = data(await while_running(gw, {"prompt": "x"}, lose_the_end))
    assert done["status"] == "completed" and done["result"] == "found it"


async def test_a_dropped_stream_reconnects_and_the_call_still_sees_the_end() -> None:
    async with in_memory_gateway(progress_interval_seconds=60) as gw:
        gw.fake.queue(Hold(), Reply("survived the gap"))
        generation = gw.hub.generation

        async def drop_the_stream(session: str, _: ProgressLines) -> None:
            gw.fake.stream_refused = True
            gw.fake.cut_stream()
            await gw.fake.until(lambda: not gw.hub.connected)
            gw.fake.resume(session)  # its events go nowhere
            gw.fake.stream_refused = False

        done = data(await while_running(gw, {"prompt": "x"}, drop_the_stream))
        await gw.fake.until(lambda: gw.hub.connected)
    assert done["status"] == "completed" and done["result"] == "survived the gap"
    assert gw.hub.generation > generation


async def test_a_short_opencode_outage_is_ridden_out() -> None:
    async with in_memory_gateway() as gw:
        gw.fake.queue(Hold(), Reply("back"))

        async def outage(session: str, _: ProgressLines) -> None:
            since = len(gw.fake.calls)
            gw.fake.down = True
            gw.hub.dispatch({"type": "gateway.disconnected", "properties": {}})  # makes the call read state
            await gw.fake.until(lambda: len(gw.fake.calls) > since)  # ... which fails
            gw.fake.resume(session)
            gw.fake.down = False

        done = data(await while_running(gw, {"prompt": "x"}, outage))
    assert done["status"] == "completed" and done["result"] == "back"


async def test_a_long_outage_ends_the_call_naming_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiter_module, "OUTAGE_PATIENCE", 0.2)
    async with in_memory_gateway() as gw:
        gw.fake.queue(Hold(), Reply("never seen"))

        async def outage(session: str, _: ProgressLines) -> None:
            gw.fake.down = True
            gw.hub.dispatch({"type": "gateway.disconnected", "properties": {}})

        result = await while_running(gw, {"prompt": "x"}, outage)
    assert result.is_error
    assert "Lost contact with OpenCode while task ses_" in error_text(result)
    assert "call get_task_status(task_id='ses_" in error_text(result)


async def test_silence_gets_keepalive_progress() -> None:
    async with in_memory_gateway(progress_interval_seconds=0.05) as gw:
        gw.fake.queue(Hold(), Reply("slow"))

        async def think(session: str, progress: ProgressLines) -> None:
            await gw.fake.until(lambda: sum(line.startswith("Still working") for line in progress.lines) >= 2)
            gw.fake.resume(session)

        assert data(await while_running(gw, {"prompt": "x"}, think))["result"] == "slow"


@pytest.mark.parametrize("mode", [LEGACY, MODERN])
async def test_cancelling_a_blocking_call_aborts_its_task(mode: str) -> None:
    async with in_memory_gateway() as gw:
        gw.fake.queue(Hold(), Reply("never"))

        async def cancel(session: str, _: ProgressLines) -> None:
            raise Cancelled  # the task group cancels the call

        with pytest.raises(ExceptionGroup) as caught:
            await while_running(gw, {"prompt": "x"}, cancel, mode=mode)
        assert caught.group_contains(Cancelled)
        session = next(iter(gw.fake.world.sessions))
        await gw.fake.until(lambda: session not in gw.fake.world.turns)
        last = gw.fake.messages(session)[-1]["info"]
    assert last["error"]["name"] == "MessageAbortedError"


class Cancelled(Exception):
    pass


async def test_a_gateway_shutting_down_leaves_the_task_running() -> None:
    async with in_memory_gateway() as gw:
        gw.fake.queue(Hold(), Reply("later"))
        gw.service.shutting_down = True

        async def stop(session: str, _: ProgressLines) -> None:
            raise Cancelled

        with pytest.raises(ExceptionGroup):
            await while_running(gw, {"prompt": "x"}, stop)
        await anyio.sleep(0.05)
    assert len(gw.fake.world.turns) == 1  # still running in OpenCode


async def test_a_subscriber_that_falls_behind_is_told_to_resync() -> None:
    sub = Subscription("ses_x", maxlen=3)
    for n in range(4):
        sub.push({"type": "message.updated", "properties": {"n": n}})
    batch = await sub.next_batch(0)
    assert batch[0]["type"] == "gateway.resync" and batch[-1]["properties"] == {"n": 3}
    assert await sub.next_batch(0.01) == []


async def test_permission_asked_while_the_stream_was_down_is_handled_after_reconnecting() -> None:
    async with in_memory_gateway(permission_policy="deny") as gw, gw.mcp() as c:
        gw.fake.stream_refused = True
        gw.fake.cut_stream()
        await gw.fake.until(lambda: not gw.hub.connected)
        gw.fake.queue(Ask(), Reply("carried on"))
        started = data(await c.call_tool("run_coding_task_async", {"prompt": "x"}))
        assert gw.fake.world.permissions  # nobody saw it being asked
        gw.fake.stream_refused = False
        await gw.fake.until(lambda: not gw.fake.world.permissions)  # the broker reconciled and denied it
        done = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 5}))
    assert done["status"] == "completed" and done["result"] == "carried on"
    assert any("denied by policy" in n for n in done["notices"])
