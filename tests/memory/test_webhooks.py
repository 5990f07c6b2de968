"""Webhooks on the fake OpenCode: the session's `notify` record as the run tools write it, and
the watcher and deliverer following tasks to the right URL, with the marks they leave."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest

from opencode_mcp_gateway.webhooks import Deliverer, Duty, Signer, Watcher
from tests.support.client import data
from tests.support.fake_opencode import Reply
from tests.support.in_memory import InMemoryGateway, in_memory_gateway

pytestmark = pytest.mark.anyio
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
HOOKS = "https://hooks.example.com/ci"
SETTINGS: dict[str, Any] = {"webhook_url_allowlist": HOOKS, "webhook_secret": SECRET}


def record(gw: InMemoryGateway, session_id: str) -> dict[str, Any]:
    return dict(gw.fake.world.sessions[session_id]["metadata"].get("notify") or {})


@asynccontextmanager
async def watching(gw: InMemoryGateway, received: list[httpx2.Request]) -> AsyncIterator[None]:
    def receiver(request: httpx2.Request) -> httpx2.Response:
        received.append(request)
        return httpx2.Response(204)

    deliverer = Deliverer(
        Signer(SECRET),
        retry_seconds=5,
        attempt_timeout=1,
        backoff_seconds=0.05,
        transport=httpx2.MockTransport(receiver),
    )
    watcher = Watcher(
        "w0",
        gw.client,
        gw.hub,
        gw.service,
        deliverer,
        Duty("g0"),
        allow_list=[HOOKS],
        deployment_url=gw.settings.webhook_url,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(deliverer.run)
        tg.start_soon(watcher.run)
        yield
        tg.cancel_scope.cancel()
    await deliverer.aclose()


async def until(condition: Any, timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.02)


async def test_the_record_follows_the_session_and_a_follow_up_moves_it_to_its_new_url() -> None:
    received: list[httpx2.Request] = []
    async with in_memory_gateway(**SETTINGS) as gw, gw.mcp() as c, watching(gw, received):
        gw.fake.queue(Reply("first"))
        first = data(await c.call_tool("run_coding_task", {"prompt": "one", "notify_url": HOOKS + "/a"}))
        sid = first["session_id"]
        assert record(gw, sid)["url"] == HOOKS + "/a" and first["task_id"].endswith(record(gw, sid)["task"])
        await until(lambda: len(received) == 1 and record(gw, sid).get("sent"))
        gw.fake.queue(Reply("second"))
        second = data(
            await c.call_tool(
                "run_coding_task", {"prompt": "two", "task_id": first["task_id"], "notify_url": HOOKS + "/b"}
            )
        )
        await until(lambda: len(received) == 2)
        gw.fake.queue(Reply("third"))
        third = data(await c.call_tool("run_coding_task", {"prompt": "three", "task_id": second["task_id"]}))
        await until(lambda: len(received) == 3 and len(record(gw, sid).get("sent", {})) == 3)
    bodies = [json.loads(r.content) for r in received]
    assert [(str(r.url), b["data"]["task_id"]) for r, b in zip(received, bodies, strict=True)] == [
        (HOOKS + "/a", first["task_id"]),
        (HOOKS + "/b", second["task_id"]),
        (HOOKS + "/b", third["task_id"]),  # no notify_url: the session's latest stays
    ]
    kept = record(gw, sid)
    assert kept["url"] == HOOKS + "/b" and third["task_id"].endswith(kept["task"])
    assert {r.headers["webhook-id"] for r in received} == set(kept["sent"])  # each marked, none lost by a PATCH
    assert all(v == {"caller": "delivered"} for v in kept["sent"].values())
    assert gw.fake.world.sessions[sid]["metadata"]["createdBy"] == "opencode-mcp-gateway"  # other keys kept


async def test_a_task_without_a_target_gets_no_record_and_no_webhook() -> None:
    received: list[httpx2.Request] = []
    async with in_memory_gateway(**SETTINGS) as gw, gw.mcp() as c, watching(gw, received):
        gw.fake.queue(Reply("quiet"))
        done = data(await c.call_tool("run_coding_task", {"prompt": "one"}))
        await anyio.sleep(0.3)
    assert "notify" not in gw.fake.world.sessions[done["session_id"]]["metadata"] and received == []


async def test_the_deployment_endpoint_gets_every_task_and_the_record_says_it_is_owed() -> None:
    received: list[httpx2.Request] = []
    bus = "https://bus.example.com/events"
    async with in_memory_gateway(**SETTINGS, webhook_url=bus) as gw, gw.mcp() as c, watching(gw, received):
        gw.fake.queue(Reply("one"))
        done = data(await c.call_tool("run_coding_task", {"prompt": "one"}))
        await until(lambda: len(received) == 1)
    assert str(received[0].url) == bus
    kept = record(gw, done["session_id"])
    assert kept["deployment"] is True and "url" not in kept
    assert list(kept["sent"].values()) == [{"deployment": "delivered"}]


async def test_an_ended_task_with_no_mark_is_sent_by_the_first_sweep_once() -> None:
    """What a gateway that starts after the task ended does (nobody was there to send it)."""
    received: list[httpx2.Request] = []
    async with in_memory_gateway(**SETTINGS) as gw, gw.mcp() as c:
        gw.fake.queue(Reply("while nobody watched"))
        done = data(await c.call_tool("run_coding_task", {"prompt": "one", "notify_url": HOOKS}))
        async with watching(gw, received):
            await until(lambda: len(received) == 1 and record(gw, done["session_id"]).get("sent"))
        async with watching(gw, received):  # and a second start finds it marked
            await anyio.sleep(0.5)
    assert len(received) == 1 and json.loads(received[0].content)["data"]["result"] == "while nobody watched"


async def test_both_run_tools_take_notify_url_and_say_what_it_does() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    for name in ("run_coding_task", "run_coding_task_async"):
        described = tools[name].input_schema["properties"]["notify_url"]
        assert "WEBHOOK_URL_ALLOWLIST" in described["description"] and "notify_url" not in tools[name].input_schema.get(
            "required", []
        )


async def test_a_turn_ended_unsent_before_a_follow_up_is_still_owed_and_sent() -> None:
    """Nobody sent the first turn's end (no gateway watching, say) before a follow-up came: the
    record keeps it owed, and the next sweep sends both ends, once."""
    received: list[httpx2.Request] = []
    async with in_memory_gateway(**SETTINGS) as gw, gw.mcp() as c:
        gw.fake.queue(Reply("first"))
        first = data(await c.call_tool("run_coding_task", {"prompt": "one", "notify_url": HOOKS}))
        gw.fake.queue(Reply("second"))
        second = data(await c.call_tool("run_coding_task", {"prompt": "two", "task_id": first["task_id"]}))
        sid = first["session_id"]
        assert len(record(gw, sid)["owed"]) == 2
        async with watching(gw, received):
            await until(lambda: len(received) == 2 and not record(gw, sid)["owed"])
        async with watching(gw, received):
            await anyio.sleep(0.5)
    assert sorted(json.loads(r.content)["data"]["result"] for r in received) == ["first", "second"]
    assert {json.loads(r.content)["data"]["task_id"] for r in received} == {first["task_id"], second["task_id"]}
