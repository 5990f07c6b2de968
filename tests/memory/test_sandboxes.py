"""The sandbox manager's rules with a fake runtime and fake workers: names, who may enter,
SANDBOX_MAX, idle stop and wake, task retention, directories; and the settings' defaults."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from opencode_mcp_gateway.config import ConfigError, load_settings
from opencode_mcp_gateway.fleet.sandboxes import (
    SandboxesFull,
    SandboxKeys,
    SandboxManager,
    SandboxUnavailable,
)
from opencode_mcp_gateway.fleet.sandboxes.runtime import SandboxEndpoint, SandboxSpec
from opencode_mcp_gateway.tasks import TaskError
from opencode_mcp_gateway.tasks.ids import TaskId, parse_task_id
from opencode_mcp_gateway.tasks.ownership import Caller, acting_as, current_caller
from tests.support.in_memory import settings_for

pytestmark = pytest.mark.anyio
SES = "ses_df4317921ffe8FoZ9xUaThiKug"
MSG = "msg_20bce86e9000ATNk7Yiu7ZNmF8"
PROVIDER = {"opencode_api_url": "http://127.0.0.1:9/v1", "opencode_api_key": "sk-x", "opencode_model_name": "m"}


class FakeRuntime:
    kind = "fake"

    def __init__(self) -> None:
        self.running: dict[str, SandboxSpec] = {}
        self.log: list[tuple[str, str]] = []

    def problem(self) -> str | None:
        return None

    async def ensure(self, spec: SandboxSpec) -> SandboxEndpoint:
        self.log.append(("ensure", spec.name))
        self.running[spec.name] = spec
        return SandboxEndpoint(spec.name, "http://sandbox", uds=f"/nowhere/{spec.name}")

    async def stop(self, name: str) -> None:
        self.log.append(("stop", name))
        self.running.pop(name, None)

    async def remove(self, name: str) -> None:
        self.log.append(("remove", name))
        self.running.pop(name, None)

    async def states(self) -> dict[str, str]:
        return dict.fromkeys(self.running, "running")


def fake_worker(spec: SandboxSpec, endpoint: SandboxEndpoint) -> Any:
    """What the manager uses of a worker: its load, its client, its service and its run."""

    async def run() -> None:
        await anyio.sleep_forever()

    async def aclose() -> None:
        pass

    return SimpleNamespace(
        name=spec.name,
        load=SimpleNamespace(running=0),
        client=SimpleNamespace(aclose=aclose),
        service=SimpleNamespace(shutting_down=False),
        run=run,
    )


def busy(worker: Any, tasks: int) -> None:
    """The fake worker runs `tasks` tasks now."""
    worker.load.running = tasks


@contextlib.asynccontextmanager
async def manager(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[SandboxManager, FakeRuntime]]:
    settings = settings_for(**{"sandbox": "caller", **PROVIDER, **overrides})
    runtime = FakeRuntime()
    keys = SandboxKeys.load(None, tmp_path / "sandboxes")
    sandboxes = SandboxManager(settings, runtime, keys, tmp_path / "sandboxes", fake_worker)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sandboxes.run)
        await anyio.sleep(0)
        yield sandboxes, runtime
        tg.cancel_scope.cancel()


def as_(name: str, *, admin: bool = False) -> contextlib.AbstractContextManager[None]:
    return acting_as(Caller(name, admin=admin))


async def test_a_caller_has_one_sandbox_named_by_a_hash_and_its_ids_name_it(tmp_path: Path) -> None:
    async with manager(tmp_path) as (sandboxes, runtime):
        with as_("alice"):
            first = await sandboxes.for_new_task(None)
            again = await sandboxes.for_new_task(None)
        with as_("bob"):
            other = await sandboxes.for_new_task(None)
        shown = {h.name: (h.state, h.scope, h.running_tasks) for h in await sandboxes.health()}
        assert shown == {first.name: ("running", "caller", 0), other.name: ("running", "caller", 0)}
    assert first is again and other.name != first.name
    assert "alice" not in first.name and first.name.startswith("c-")
    assert runtime.log[:2] == [("ensure", first.name), ("ensure", other.name)]
    assert sorted(runtime.log[2:]) == sorted([("stop", first.name), ("stop", other.name)])  # with the gateway
    tid = TaskId(SES, MSG, first.name)
    assert parse_task_id(str(tid)) == tid and str(tid).startswith(first.name + ":")
    assert parse_task_id(f"{SES}.{MSG}").worker == "w0"  # ids from before sandboxes keep their meaning


async def test_someone_elses_sandbox_reads_as_a_missing_task_and_wakes_nothing(tmp_path: Path) -> None:
    async with manager(tmp_path, sandbox="task") as (sandboxes, runtime):
        with as_("alice"):
            mine = (await sandboxes.for_new_task(None)).name
            second = (await sandboxes.for_new_task(None)).name
        assert mine != second and mine.startswith("t-")
        await sandboxes.runtime.stop(mine)
        sandboxes.workers.pop(mine)
        before = list(runtime.log)
        made_up = TaskId(SES, MSG, "t-" + "0" * 26)
        with as_("bob"), pytest.raises(TaskError) as theirs:
            await sandboxes.enter(TaskId(SES, MSG, mine))
        with as_("bob"), pytest.raises(TaskError) as missing:
            await sandboxes.enter(made_up)
        assert (
            str(theirs.value)
            == str(missing.value)
            == f"unknown task_id: OpenCode has no session {SES} (deleted, or another OpenCode)"
        )
        assert runtime.log == before  # nothing woken for it
        with as_("root", admin=True):
            assert (await sandboxes.enter(TaskId(SES, MSG, mine))).name == mine  # the admin may; woken
        assert runtime.log[-1] == ("ensure", mine)


async def test_past_sandbox_max_the_idle_one_stops_and_a_busy_one_makes_a_retryable_error(tmp_path: Path) -> None:
    async with manager(tmp_path, sandbox_max=1) as (sandboxes, runtime):
        with as_("alice"):
            alice = await sandboxes.for_new_task(None)
        with as_("bob"):
            bob = await sandboxes.for_new_task(None)  # alice's is idle: it makes room
        assert ("stop", alice.name) in runtime.log and set(runtime.running) == {bob.name}
        busy(bob, 1)
        with as_("carol"), pytest.raises(SandboxesFull) as full:
            await sandboxes.for_new_task(None)
        assert "SANDBOX_MAX=1" in str(full.value) and "try again" in str(full.value)
        busy(bob, 0)
        with sandboxes.using(bob.name), as_("carol"), pytest.raises(SandboxesFull):
            await sandboxes.for_new_task(None)  # a call working with it keeps it too


async def test_an_idle_sandbox_stops_and_the_next_call_wakes_it(tmp_path: Path) -> None:
    async with manager(tmp_path, sandbox_idle_seconds=0.2) as (sandboxes, runtime):
        with as_("alice"):
            name = (await sandboxes.for_new_task(None)).name
        with sandboxes.using(name):
            await anyio.sleep(1.2)
            assert name in runtime.running  # in use: not idle
        with anyio.fail_after(5):
            while name in runtime.running:
                await anyio.sleep(0.1)
        assert name not in sandboxes.workers
        with as_("alice"):
            woken = await sandboxes.enter(TaskId(SES, MSG, name))
        assert woken.name == name and runtime.log.count(("ensure", name)) == 2


async def test_a_task_sandbox_is_removed_with_its_retention(tmp_path: Path) -> None:
    async with manager(tmp_path, sandbox="task", sandbox_idle_seconds=0.2, workspace_ttl_hours=0.0003) as (
        sandboxes,
        runtime,
    ):
        with as_("alice"):
            name = (await sandboxes.for_new_task(None)).name
        with anyio.fail_after(10):
            while ("remove", name) not in runtime.log:
                await anyio.sleep(0.1)
        with as_("alice"), pytest.raises(TaskError, match="unknown task_id"):
            await sandboxes.enter(TaskId(SES, MSG, name))  # gone with its task


async def test_a_directory_is_shown_after_a_restart_and_only_under_workspace_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    async with manager(tmp_path / "state", workspace_root=str(root)) as (sandboxes, runtime):
        with as_("alice"):
            worker = await sandboxes.for_new_task("a")
            assert runtime.running[worker.name].directories == (str(root / "a"),)
            busy(worker, 1)
            with pytest.raises(SandboxUnavailable, match="try again when they have ended"):
                await sandboxes.for_new_task("b")
            busy(worker, 0)
            worker = await sandboxes.for_new_task("b")
            assert runtime.running[worker.name].directories == (str(root / "a"), str(root / "b"))
            with pytest.raises(ValueError, match="outside WORKSPACE_ROOT"):
                await sandboxes.for_new_task(str(tmp_path))
    async with manager(tmp_path / "other") as (sandboxes, _):
        with as_("alice"), pytest.raises(ValueError, match="needs WORKSPACE_ROOT"):
            await sandboxes.for_new_task(str(root / "a"))


def test_names_and_secrets_are_derived_alike_by_every_process_and_the_token_fits_one_sandbox(tmp_path: Path) -> None:
    one, two = SandboxKeys.load(None, tmp_path), SandboxKeys.load(None, tmp_path)  # two processes, one key file
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
    name = one.caller_sandbox("alice")
    assert name == two.caller_sandbox("alice") and one.password(name) == two.password(name)
    token = one.llm_token(name).encode()
    assert two.accepts_llm_token(token)
    other = one.caller_sandbox("bob")
    assert not one.accepts_llm_token(token.replace(name.encode(), other.encode()))
    assert not one.accepts_llm_token(token[:-1] + b"0" if token[-1:] != b"0" else token[:-1] + b"1")
    assert not one.accepts_llm_token(b"sk-anything")
    shared = SandboxKeys.load("replica-secret", tmp_path / "a")
    assert shared.caller_sandbox("alice") == SandboxKeys.load("replica-secret", tmp_path / "b").caller_sandbox("alice")
    assert shared.caller_sandbox("alice") != name


@pytest.mark.parametrize(
    ("env", "scope"),
    [
        ({"SPAWN_OPENCODE": "true", "MCP_API_KEYS_FILE": "/k"}, "caller"),
        (
            {"SPAWN_OPENCODE": "true", "OAUTH_ISSUER": "https://idp.example", "PUBLIC_URL": "https://gw.example"},
            "caller",
        ),
        ({"SPAWN_OPENCODE": "true", "MCP_BEARER_TOKEN": "t"}, "off"),  # one token: one trust domain
        ({"SPAWN_OPENCODE": "true"}, "off"),
        ({"MCP_API_KEYS_FILE": "/k"}, "off"),  # an OpenCode it does not run
        ({"MCP_API_KEYS_FILE": "/k", "SANDBOX": "task"}, "task"),
        ({"SPAWN_OPENCODE": "true", "MCP_API_KEYS_FILE": "/k", "SANDBOX": "off"}, "off"),
    ],
)
def test_the_default_scope(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], scope: str) -> None:
    for name in list(os.environ):
        if name.startswith(("OPENCODE_", "MCP_", "SANDBOX", "OAUTH_")):
            monkeypatch.delenv(name)
    for name, value in {**{k.upper(): v for k, v in PROVIDER.items()}, **env}.items():
        monkeypatch.setenv(name, value)
    assert load_settings(_env_file=None).sandbox_scope == scope


def test_sandboxes_refuse_a_pool_and_need_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX", "caller")
    monkeypatch.setenv("OPENCODE_WORKERS", "w0=http://127.0.0.1:4096")
    with pytest.raises(ConfigError, match=r"SANDBOX=caller: .* no pool"):
        load_settings(_env_file=None, **PROVIDER)
    monkeypatch.delenv("OPENCODE_WORKERS")
    with pytest.raises(ConfigError, match=r"OPENCODE_API_URL.*required with SANDBOX=caller"):
        load_settings(_env_file=None, opencode_api_key="k", opencode_model_name="m")


async def test_a_stopping_sandbox_leaves_its_listing_which_only_its_caller_reads_until_it_wakes(tmp_path: Path) -> None:
    async with manager(tmp_path, sandbox="task", sandbox_max=1) as (sandboxes, runtime):
        asked_as: list[Any] = []

        async def listing(worker: Any) -> list[Any]:
            asked_as.append(current_caller())
            return [{"task": worker.name}]

        sandboxes.listing = listing
        with as_("alice"):
            alice = (await sandboxes.for_new_task(None)).name
            assert sandboxes.kept_listings() == []  # it runs: its OpenCode answers
        with as_("bob"):
            bob = (await sandboxes.for_new_task(None)).name  # SANDBOX_MAX=1: alice's stops for it
            assert sandboxes.kept_listings() == []  # alice's is not bob's to see
        assert asked_as == [None]  # read as nobody, though it stopped inside bob's call
        started = list(runtime.log)
        with as_("alice"):
            assert sandboxes.kept_listings() == [{"task": alice}]
        with as_("root", admin=True):
            assert sandboxes.kept_listings() == [{"task": alice}]
        assert runtime.log == started  # listing woke nothing
        with as_("alice"):
            await sandboxes.enter(TaskId(SES, MSG, alice))  # woken (bob's idle one makes room)
            assert sandboxes.kept_listings() == []
        with as_("bob"):
            assert sandboxes.kept_listings() == [{"task": bob}]
    assert sandboxes.records.kept_listing(alice) == [{"task": alice}]  # kept as the gateway stopped


async def test_a_listing_starts_no_sandbox_a_caller_never_had_and_wakes_one_that_left_none(tmp_path: Path) -> None:
    async with manager(tmp_path, sandbox_idle_seconds=0.2) as (sandboxes, runtime):
        with as_("alice"):
            assert await sandboxes.own_for_listing() is None
            assert runtime.log == []
            name = (await sandboxes.for_new_task(None)).name
            assert (await sandboxes.own_for_listing()).name == name  # type: ignore[union-attr]
        with anyio.fail_after(5):  # it stops idle with no `listing` given: nothing kept
            while name in runtime.running:
                await anyio.sleep(0.1)
        with as_("alice"):
            assert (await sandboxes.own_for_listing()).name == name  # type: ignore[union-attr]
        assert runtime.log.count(("ensure", name)) == 2

        async def listing(worker: Any) -> list[Any]:
            return [{"task": worker.name}]

        sandboxes.listing = listing
        with anyio.fail_after(5):
            while name in runtime.running:
                await anyio.sleep(0.1)
        with as_("alice"):
            assert await sandboxes.own_for_listing() is None
            assert sandboxes.kept_listings() == [{"task": name}]
        assert runtime.log.count(("ensure", name)) == 2
