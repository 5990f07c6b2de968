"""The worker pool: task ids naming their worker, the pool settings, placement."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from opencode_mcp_gateway.config import ConfigError, load_settings
from opencode_mcp_gateway.config._topology import default_max_tasks
from opencode_mcp_gateway.fleet.placement import Placement, PoolFull, WorkerLoad
from opencode_mcp_gateway.fleet.pool import TaskPool, WorkerDown
from opencode_mcp_gateway.opencode import OpenCodeUnavailable
from opencode_mcp_gateway.tasks import TaskError
from opencode_mcp_gateway.tasks.ids import InvalidTaskId, TaskId, parse_task_id

pytestmark = pytest.mark.anyio
SES = "ses_df4317921ffe8FoZ9xUaThiKug"
MSG = "msg_20bce86e9000ATNk7Yiu7ZNmF8"


# -- ids ------------------------------------------------------------------------------------
def test_w0_ids_keep_the_form_they_had_before_the_pool() -> None:
    assert str(TaskId(SES, MSG)) == f"{SES}.{MSG}" == str(TaskId(SES, MSG, "w0"))
    assert parse_task_id(f"{SES}.{MSG}") == TaskId(SES, MSG, "w0")
    assert parse_task_id(f"w0:{SES}.{MSG}") == TaskId(SES, MSG, "w0")  # the explicit form means the same


def test_other_workers_ids_name_the_worker() -> None:
    tid = TaskId(SES, MSG, "w12")
    assert str(tid) == f"w12:{SES}.{MSG}"
    assert parse_task_id(str(tid)) == tid
    assert parse_task_id(f"w3:{SES}") == TaskId(SES, None, "w3")  # a bare session: its newest task
    assert str(TaskId(SES, None, "w3")) == f"w3:{SES}"


@pytest.mark.parametrize(
    "raw",
    [
        f"w01:{SES}.{MSG}",  # one spelling per worker
        f"x1:{SES}.{MSG}",
        f"w1.{SES}.{MSG}",
        f"http://evil:1:{SES}.{MSG}",
        f"w1:w2:{SES}.{MSG}",
        f"w1:{MSG}",
        f"w99999:{SES}.{MSG}",
    ],
)
def test_malformed_worker_prefixes_are_refused(raw: str) -> None:
    with pytest.raises(InvalidTaskId, match="w1:ses_"):
        parse_task_id(raw)


# -- settings -------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in list(os.environ):
        if name.startswith(("OPENCODE_", "WORKER_", "SCHEDULE_", "SPAWN_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]


def test_without_a_pool_the_base_url_is_worker_w0_with_no_limit() -> None:
    s = load_settings(opencode_base_url="http://oc:4096/")
    assert s.worker_urls == {"w0": "http://oc:4096"} and s.worker_task_limit is None
    assert s.schedule_wait_seconds == 30


def test_a_listed_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCODE_WORKERS", " w0=http://a:4096 , w1=https://b:4096/ ,")
    s = load_settings()
    assert s.worker_urls == {"w0": "http://a:4096", "w1": "https://b:4096"}
    assert s.worker_task_limit == default_max_tasks() >= 4  # sized to the CPU
    monkeypatch.setenv("WORKER_MAX_TASKS", "3")
    assert load_settings().worker_task_limit == 3


def test_the_template_form_expands_for_each_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCODE_WORKER_URL_TEMPLATE", "http://ocgw-{i}.ocgw-workers.ns.svc:4096")
    monkeypatch.setenv("OPENCODE_WORKER_COUNT", "3")
    assert load_settings().worker_urls == {f"w{i}": f"http://ocgw-{i}.ocgw-workers.ns.svc:4096" for i in range(3)}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPENCODE_WORKERS": "w0=http://a:1,worker1=http://b:1"}, "OPENCODE_WORKERS: worker names are w followed"),
        ({"OPENCODE_WORKERS": "w0=http://a:1,w0=http://b:1"}, "worker w0 is named twice"),
        ({"OPENCODE_WORKERS": "w0=http://a:1,w1"}, "entry 2 is not"),
        ({"OPENCODE_WORKERS": "w0=ftp://opencode:hunter22@a:1"}, "w0: must be an http(s) URL"),
        ({"OPENCODE_WORKER_URL_TEMPLATE": "http://a:1"}, "set both or neither"),
        ({"OPENCODE_WORKER_URL_TEMPLATE": "http://a:1", "OPENCODE_WORKER_COUNT": "2"}, "must contain {i}"),
        ({"OPENCODE_WORKER_COUNT": "0", "OPENCODE_WORKER_URL_TEMPLATE": "http://a-{i}:1"}, "OPENCODE_WORKER_COUNT"),
        ({"OPENCODE_WORKERS": "w0=http://a:1", "OPENCODE_WORKER_COUNT": "2"}, "not both"),
        ({"WORKER_MAX_TASKS": "0"}, "WORKER_MAX_TASKS"),
        ({"SCHEDULE_WAIT_SECONDS": "-1"}, "SCHEDULE_WAIT_SECONDS"),
    ],
)
def test_bad_pool_settings_stop_start_up_with_one_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "hunter22" not in str(err.value)


def test_spawn_mode_in_a_pool_serves_its_worker_to_the_other_gateways(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's StatefulSet: every pod spawns one worker of the pool."""
    for name, value in {"OPENCODE_API_URL": "http://x/v1", "OPENCODE_API_KEY": "k", "OPENCODE_MODEL_NAME": "m"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENCODE_WORKER_URL_TEMPLATE", "http://ocgw-{i}.ocgw-workers.ns.svc:4096")
    monkeypatch.setenv("OPENCODE_WORKER_COUNT", "2")
    with pytest.raises(ConfigError, match="set OPENCODE_LISTEN_HOST"):
        load_settings(spawn_opencode=True)  # a loopback-only worker nobody else could reach
    with pytest.raises(ConfigError, match="OPENCODE_PASSWORD is required"):
        load_settings(spawn_opencode=True, opencode_listen_host="0.0.0.0")
    pod = load_settings(spawn_opencode=True, opencode_listen_host="0.0.0.0", opencode_password="shared")
    assert list(pod.worker_urls) == ["w0", "w1"]


# -- placement ------------------------------------------------------------------------------
class FakeHub:
    connected = True


def load(name: str, connected: bool = True) -> WorkerLoad:
    hub = FakeHub()
    hub.connected = connected
    return WorkerLoad(name, hub, None, [None])  # type: ignore[arg-type]


def status(sid: str, kind: str) -> dict[str, Any]:
    return {"type": "session.status", "properties": {"sessionID": sid, "status": {"type": kind}}}


def test_load_follows_the_event_stream() -> None:
    w = load("w0")
    w.feed(status("ses_a", "busy"))
    w.feed(status("ses_b", "retry"))
    w.feed(status("ses_a", "busy"))  # the same task, again
    assert w.running == 2
    w.feed(status("ses_a", "idle"))
    w.feed({"type": "session.idle", "properties": {"sessionID": "ses_b"}})
    assert w.running == 0
    w.feed(status("ses_c", "busy"))
    assert w.feed({"type": "gateway.resync", "properties": {}}) is True  # a gap: read the busy set again
    w.feed({"type": "gateway.disconnected", "properties": {}})
    assert w.running == 0


async def test_a_new_task_goes_to_the_least_loaded_ready_worker() -> None:
    w0, w1, w2 = load("w0"), load("w1"), load("w2", connected=False)
    for sid in ("ses_a", "ses_b"):
        w0.feed(status(sid, "busy"))
    placement = Placement([w0, w1, w2], max_tasks=3, wait_seconds=0)
    chosen = [(await placement.acquire()).name for _ in range(3)]
    # w1 takes the first two (its own placements count at once), then both hold 2: w2 is down
    assert chosen[:2] == ["w1", "w1"] and chosen[2] in ("w0", "w1")
    assert w2.running == 0


async def test_a_reservation_turns_into_the_task_it_placed() -> None:
    w0 = load("w0")
    placement = Placement([w0], max_tasks=5, wait_seconds=0)
    await placement.acquire()
    assert w0.running == 1
    w0.feed(status("ses_new", "busy"))  # the placed task started: counted once
    assert w0.running == 1
    chosen = await placement.acquire()
    chosen.release()  # its submission failed: the slot is free again
    assert w0.running == 1


async def test_when_every_worker_is_full_the_call_waits_then_fails_retryably() -> None:
    w0, w1 = load("w0"), load("w1")
    w0.feed(status("ses_a", "busy"))
    w1.feed(status("ses_b", "busy"))
    placement = Placement([w0, w1], max_tasks=1, wait_seconds=0.5)
    told: list[str] = []

    async def report(line: str) -> None:
        told.append(line)

    started = time.monotonic()
    with pytest.raises(PoolFull, match=r"all 2 workers \(w0, w1\) are running WORKER_MAX_TASKS=1.*try again"):
        await placement.acquire(report=report)
    assert time.monotonic() - started >= 0.5
    assert told == [told[0]] and "waiting up to" in told[0]


async def test_a_waiting_call_takes_the_first_slot_that_frees() -> None:
    w0, w1 = load("w0"), load("w1")
    w0.feed(status("ses_a", "busy"))
    w1.feed(status("ses_b", "busy"))
    placement = Placement([w0, w1], max_tasks=1, wait_seconds=10)
    async with anyio.create_task_group() as tg:

        async def free_later() -> None:
            await anyio.sleep(0.2)
            w1.feed(status("ses_b", "idle"))

        tg.start_soon(free_later)
        started = time.monotonic()
        chosen = await placement.acquire()
    assert chosen.name == "w1" and time.monotonic() - started < 2


async def test_a_follow_up_waits_for_its_own_worker() -> None:
    w0, w1 = load("w0"), load("w1")
    w0.feed(status("ses_a", "busy"))
    placement = Placement([w0, w1], max_tasks=1, wait_seconds=0.2)
    with pytest.raises(PoolFull, match=r"worker \(w0\) is running"):
        await placement.acquire(w0)
    assert (await placement.acquire()).name == "w1"


async def test_no_worker_answering_is_said_so() -> None:
    placement = Placement([load("w0", False), load("w1", False)], max_tasks=4, wait_seconds=0)
    with pytest.raises(PoolFull, match=r"no OpenCode worker answers \(w0, w1\)"):
        await placement.acquire()


async def test_one_opencode_without_a_limit_is_placed_as_before_even_when_down() -> None:
    only = load("w0", connected=False)
    assert await Placement([only], max_tasks=None, wait_seconds=30).acquire() is only


# -- routing --------------------------------------------------------------------------------
class DownService:
    shutting_down = False

    async def view(self, tid: TaskId, *, with_files: bool = True) -> Any:
        raise OpenCodeUnavailable("connection refused")


def pool_of(*names: str) -> TaskPool:
    workers = [
        SimpleNamespace(name=n, service=DownService(), load=load(n), client=SimpleNamespace(display_url=f"http://{n}"))
        for n in names
    ]
    return TaskPool(load_settings(opencode_workers=",".join(f"{n}=http://{n}:1" for n in names)), workers)  # type: ignore[arg-type]


async def test_a_worker_that_does_not_answer_is_named_never_an_unknown_task() -> None:
    with pytest.raises(WorkerDown, match=r"OpenCode worker w1 \(http://w1\), which holds task w1:ses_") as err:
        await pool_of("w0", "w1").view(parse_task_id(f"w1:{SES}.{MSG}"))
    assert "unknown" not in str(err.value) and "get_task_status" in str(err.value)


async def test_a_worker_not_configured_is_an_unknown_task_and_never_contacted() -> None:
    with pytest.raises(TaskError, match=r"unknown task_id w5:ses_.*no OpenCode worker w5 \(its workers: w0, w1\)"):
        await pool_of("w0", "w1").view(parse_task_id(f"w5:{SES}.{MSG}"))


async def test_with_one_opencode_its_errors_read_as_before() -> None:
    with pytest.raises(OpenCodeUnavailable, match="connection refused"):
        await pool_of("w0").view(parse_task_id(f"{SES}.{MSG}"))
