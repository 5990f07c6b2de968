from __future__ import annotations

import anyio
import pytest

from opencode_mcp_gateway.primitives import SingleFlight

pytestmark = pytest.mark.anyio


class Counted:
    """A slow read that counts how often it was made; `fail` makes it raise."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail
        self.release = anyio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError(f"read {self.calls} failed")
        return self.calls


async def gather(flight: SingleFlight[int], read: Counted, callers: int) -> list[object]:
    got: list[object] = []

    async def one() -> None:
        try:
            got.append(await flight(read))
        except RuntimeError as exc:
            got.append(str(exc))

    async with anyio.create_task_group() as tg:
        for _ in range(callers):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        read.release.set()
    return got


async def test_callers_that_ask_while_a_read_is_on_its_way_share_it() -> None:
    flight: SingleFlight[int] = SingleFlight()
    read = Counted()
    assert await gather(flight, read, 5) == [1, 1, 1, 1, 1]
    assert read.calls == 1


async def test_nothing_is_kept_once_the_read_has_landed() -> None:
    flight: SingleFlight[int] = SingleFlight()
    read = Counted()
    read.release.set()
    assert [await flight(read), await flight(read)] == [1, 2]


async def test_a_failure_reaches_every_caller_that_shared_the_read() -> None:
    flight: SingleFlight[int] = SingleFlight()
    read = Counted(fail=True)
    assert await gather(flight, read, 3) == ["read 1 failed"] * 3
    read.fail = False
    assert await flight(read) == 2  # the failure is not kept either


async def test_a_follower_makes_the_read_itself_when_the_leader_is_cancelled() -> None:
    flight: SingleFlight[int] = SingleFlight()
    read = Counted()
    got: list[int] = []
    leader = anyio.CancelScope()

    async def lead() -> None:
        with leader:
            await flight(read)

    async def follow() -> None:
        got.append(await flight(read))

    async with anyio.create_task_group() as tg:
        tg.start_soon(lead)
        await anyio.wait_all_tasks_blocked()  # the leader's read 1 is on its way
        tg.start_soon(follow)
        await anyio.wait_all_tasks_blocked()  # the follower waits for read 1
        leader.cancel()
        await anyio.wait_all_tasks_blocked()
        read.release.set()
    assert read.calls == 2 and got == [2]  # read 1 never landed; the follower made read 2
