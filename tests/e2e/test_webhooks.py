"""Completion webhooks against the real `opencode serve`, delivered to a receiver on loopback.

Every gateway here is started and stopped by its own test: any gateway with webhooks on the
shared OpenCode is a sender, so none may outlive the test that counts deliveries."""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import mcp
import pytest
from standardwebhooks import Webhook

from opencode_mcp_gateway.webhooks import Signer
from tests.e2e.test_replicas import Replicas
from tests.support.client import data, error_text, mcp_session, script
from tests.support.procs import Gateway, OpenCodeServer
from tests.support.webhook_receiver import Delivery, WebhookReceiver

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
FAST = {  # retries within seconds, so that the tests take seconds
    "WEBHOOK_SECRET": SECRET,
    "WEBHOOK_RETRY_SECONDS": "4",
    "WEBHOOK_BACKOFF_SECONDS": "0.3",
    "WEBHOOK_ATTEMPT_TIMEOUT_SECONDS": "1",
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


@contextmanager
def running(root: Path, opencode: OpenCodeServer, env: dict[str, str]) -> Iterator[Gateway]:
    gw = Gateway(root, {"OPENCODE_BASE_URL": opencode.url, **FAST, **env}).start()
    try:
        yield gw
    finally:
        gw.stop()
        assert_no_secret(gw)


def assert_no_secret(gw: Gateway) -> None:
    logs = gw.logs()
    assert SECRET not in logs and SECRET.removeprefix("whsec_") not in logs


@asynccontextmanager
async def client(gw: Gateway, token: str | None = None) -> AsyncIterator[Any]:
    if token is None:
        async with mcp.Client(gw.mcp_url) as c:
            yield c
    else:
        async with mcp_session(gw.mcp_url, headers={"Authorization": f"Bearer {token}"}) as s:
            yield s


def verified(delivery: Delivery) -> dict[str, Any]:
    """The body, once its Standard Webhooks signature checks out with the library."""
    body: dict[str, Any] = Webhook(SECRET).verify(delivery.body, delivery.headers)
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]+=*", delivery.headers["webhook-signature"])
    return body


async def test_every_event_kind_is_delivered_signed(
    tmp_path: Path, opencode: OpenCodeServer, receiver: WebhookReceiver
) -> None:
    hook = receiver.script("/hooks/kinds")
    env = {"WEBHOOK_URL_ALLOWLIST": receiver.url + "/hooks", "PERMISSION_POLICY": "ask"}
    with running(tmp_path, opencode, env) as gw:
        async with client(gw) as c:
            done = data(
                await c.call_tool("run_coding_task", {"prompt": script({"text": "all done"}), "notify_url": hook})
            )
            failed = data(
                await c.call_tool(
                    "run_coding_task", {"prompt": script({"error": 401, "message": "bad key"}), "notify_url": hook}
                )
            )
            running_task = data(
                await c.call_tool(
                    "run_coding_task_async", {"prompt": script({"text": "x", "hang": 60}), "notify_url": hook}
                )
            )
            await c.call_tool("abort_task", {"task_id": running_task["task_id"]})
            outside = tmp_path / f"outside-{uuid.uuid4().hex[:6]}" / "out.txt"
            outside.parent.mkdir()
            asking = script({"tool": "write", "args": {"filePath": str(outside), "content": "x\n"}}, {"text": "wrote"})
            waiting = data(await c.call_tool("run_coding_task_async", {"prompt": asking, "notify_url": hook}))
            status = data(await c.call_tool("get_task_status", {"task_id": waiting["task_id"], "wait_seconds": 60}))
            assert status["status"] == "waiting_for_input", status
            request = status["pending"][0]
            got = receiver.wait_for(4, "/hooks/kinds")
            data(
                await c.call_tool(
                    "respond_to_task", {"task_id": waiting["task_id"], "request_id": request["id"], "reply": "once"}
                )
            )
            receiver.wait_for(5, "/hooks/kinds")
        metrics = httpx2.get(gw.url + "/metrics").text
    got = receiver.deliveries("/hooks/kinds")
    bodies = {(b["data"]["task_id"], b["type"]): b for b in map(verified, got)}
    assert len(got) == len(bodies) == 5, [(d.json["type"], d.json["data"]["task_id"]) for d in got]
    completed = bodies[(done["task_id"], "task.completed")]
    assert completed["data"]["status"] == "completed" and completed["data"]["result"] == "all done"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", completed["timestamp"])
    assert set(completed["data"]) >= {"task_id", "status", "title", "result", "error", "files_changed", "request"}
    assert "bad key" in bodies[(failed["task_id"], "task.failed")]["data"]["error"]
    assert bodies[(running_task["task_id"], "task.aborted")]["data"]["status"] == "aborted"
    asked = bodies[(waiting["task_id"], "task.waiting_for_input")]["data"]
    assert asked["status"] == "waiting_for_input" and asked["request"]["id"] == request["id"]
    assert asked["request"]["kind"] == "permission" and asked["request"]["description"]
    assert bodies[(waiting["task_id"], "task.completed")]["data"]["result"] == "wrote"
    for delivery in got:  # the same id a receiver would dedupe on, and nothing secret in a body
        assert delivery.id.startswith("evt_") and SECRET not in delivery.body.decode()
    assert 'ocgw_webhook_deliveries_total{event="task.completed",result="delivered"} 2.0' in metrics
    assert 'ocgw_webhook_deliveries_total{event="task.waiting_for_input",result="delivered"} 1.0' in metrics
    assert "ocgw_webhook_retry_backlog 0.0" in metrics


async def test_retries_keep_the_id_and_redirects_are_not_followed(
    tmp_path: Path, opencode: OpenCodeServer, receiver: WebhookReceiver
) -> None:
    flaky = receiver.script("/hooks/flaky", fail=2)
    slow = receiver.script("/hooks/slow", hang=3)  # past WEBHOOK_ATTEMPT_TIMEOUT_SECONDS=1 every time
    moved = receiver.script("/hooks/moved", redirect=receiver.url + "/hooks/target")
    with running(tmp_path, opencode, {"WEBHOOK_URL_ALLOWLIST": receiver.url + "/hooks/"}) as gw:
        async with client(gw) as c:
            for url in (flaky, slow, moved):
                data(await c.call_tool("run_coding_task", {"prompt": script({"text": "ok"}), "notify_url": url}))
        tries = receiver.wait_for(3, "/hooks/flaky")
        given_up = 'ocgw_webhook_deliveries_total{event="task.completed",result="failed"} 2.0'
        deadline = time.monotonic() + 60  # WEBHOOK_RETRY_SECONDS=4 after each first attempt, on a busy machine
        while given_up not in (metrics := httpx2.get(gw.url + "/metrics").text):
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
        log = gw.logs()
    assert [d.status for d in receiver.deliveries("/hooks/flaky")] == [503, 503, 200]
    assert len({d.id for d in tries}) == 1 and all(verified(d) for d in tries)
    assert len({d.headers["webhook-timestamp"] for d in tries}) >= 1  # each attempt signed afresh
    for path in ("/hooks/slow", "/hooks/moved"):
        attempts = receiver.deliveries(path)
        assert len(attempts) >= 2 and len({d.id for d in attempts}) == 1, attempts
    assert receiver.deliveries("/hooks/target") == []  # the redirect was never followed
    assert 'ocgw_webhook_deliveries_total{event="task.completed",result="delivered"} 1.0' in metrics
    event = tries[0].id
    assert re.search(rf"webhook {event} task.completed attempt 1 to caller: HTTP 503; next attempt in", log)
    assert "/hooks/flaky" not in log  # the URL may hold a token: never logged


async def test_every_refusal_is_a_tool_error_before_any_task(
    tmp_path: Path, opencode: OpenCodeServer, gateway: Gateway, receiver: WebhookReceiver
) -> None:
    allowed = receiver.url + "/hooks/team"
    async with mcp.Client(gateway.mcp_url) as c:  # a gateway without WEBHOOK_URL_ALLOWLIST
        before = data(await c.call_tool("list_tasks", {"limit": 100}))["tasks"]
        refused = await c.call_tool("run_coding_task_async", {"prompt": script({"text": "x"}), "notify_url": allowed})
        assert refused.is_error and "WEBHOOK_URL_ALLOWLIST" in error_text(refused)
    with running(tmp_path, opencode, {"WEBHOOK_URL_ALLOWLIST": allowed}) as gw:
        async with client(gw) as c:
            host = receiver.url.removeprefix("http://")
            for url, says in [
                (receiver.url + "/hooks/teammate", "WEBHOOK_URL_ALLOWLIST"),
                ("http://203.0.113.9/hooks/team", "WEBHOOK_URL_ALLOWLIST"),
                ("file:///etc/passwd", "only http:// and https://"),
                (f"ftp://{host}/hooks/team", "only http:// and https://"),
                (f"http://user:pw@{host}/hooks/team", "credentials"),
                (allowed + "/../other", "'..'"),
            ]:
                result = await c.call_tool("run_coding_task", {"prompt": script({"text": "x"}), "notify_url": url})
                assert result.is_error and says in error_text(result), (url, error_text(result))
                assert "pw" not in error_text(result)
            after = data(await c.call_tool("list_tasks", {"limit": 100}))["tasks"]
    assert [t["task_id"] for t in after] == [t["task_id"] for t in before]  # not one task started
    assert receiver.deliveries() == []


async def test_an_event_while_no_gateway_ran_is_delivered_once_after_the_restart(
    tmp_path: Path, opencode: OpenCodeServer, gateway: Gateway, receiver: WebhookReceiver
) -> None:
    hook = receiver.script("/hooks/restart")
    env = {"OPENCODE_BASE_URL": opencode.url, **FAST, "WEBHOOK_URL_ALLOWLIST": receiver.url + "/hooks/"}
    first = Gateway(tmp_path / "first", env).start()
    try:
        async with client(first) as c:
            started = data(
                await c.call_tool(
                    "run_coding_task_async", {"prompt": script({"text": "later", "hang": 3}), "notify_url": hook}
                )
            )
    finally:
        first.proc.kill()  # type: ignore[union-attr]  # no goodbye: nothing it held in memory survives
        first.proc.wait()  # type: ignore[union-attr]
    async with mcp.Client(gateway.mcp_url) as c:  # a gateway without webhooks watches it end
        ended = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 60}))
    assert ended["status"] == "completed" and receiver.deliveries() == []
    for round_ in range(2):  # the second start finds it delivered: nothing is sent again
        again = Gateway(tmp_path / f"again{round_}", env).start()
        try:
            deadline = time.monotonic() + 30
            while "webhooks: first sweep of worker w0 done" not in again.logs():
                assert time.monotonic() < deadline, again.logs()[-2000:]
                time.sleep(0.1)
            got = receiver.wait_for(1, "/hooks/restart", timeout=20)
            time.sleep(1)
        finally:
            again.stop()
            assert_no_secret(again)
        assert len(got) == 1 and len(receiver.deliveries()) == 1
    body = verified(got[0])
    assert body["type"] == "task.completed" and body["data"]["task_id"] == started["task_id"]
    assert body["data"]["result"] == "later"
    assert_no_secret(first)


async def test_three_replicas_send_each_event_once(
    tmp_path: Path, opencode: OpenCodeServer, receiver: WebhookReceiver
) -> None:
    hook = receiver.script("/hooks/trio")
    trio = Replicas(tmp_path, opencode, {**FAST, "WEBHOOK_URL_ALLOWLIST": receiver.url + "/hooks/"})
    trio.start()
    try:
        time.sleep(2.5)  # the replicas have asked each other's /readyz
        async with mcp.Client(trio.mcp_url) as c:
            ids = [
                data(
                    await c.call_tool(
                        "run_coding_task_async", {"prompt": script({"text": f"n{i}"}), "notify_url": hook}
                    )
                )["task_id"]
                for i in range(6)
            ]
        got = receiver.wait_for(6, "/hooks/trio")
        time.sleep(2)  # time for a second sender, if there were one
        logs = [g.logs() for g in trio.gateways]
    finally:
        trio.stop()
    got = receiver.deliveries("/hooks/trio")
    assert sorted(d.json["data"]["task_id"] for d in got) == sorted(ids)
    assert len({d.id for d in got}) == 6
    for delivery in got:
        senders = [i for i, log in enumerate(logs) if f"webhook {delivery.id} task.completed attempt 1" in log]
        assert len(senders) == 1, (delivery.id, senders)
    for log in logs:
        assert SECRET not in log and SECRET.removeprefix("whsec_") not in log


async def test_the_deployment_endpoint_gets_every_callers_events(
    tmp_path: Path, opencode: OpenCodeServer, receiver: WebhookReceiver
) -> None:
    keys = tmp_path / "api-keys"
    alice, bob = secrets.token_hex(16), secrets.token_hex(16)
    keys.write_text(f"alice {alice}\nbob {bob}\n")
    platform = receiver.script("/platform")
    mine = receiver.script("/callers/alice")
    env = {"MCP_API_KEYS_FILE": str(keys), "WEBHOOK_URL": platform, "WEBHOOK_URL_ALLOWLIST": receiver.url + "/callers/"}
    with running(tmp_path, opencode, env) as gw:
        async with client(gw, alice) as a:
            a_task = data(
                await a.call_tool("run_coding_task", {"prompt": script({"text": "alice's"}), "notify_url": mine})
            )
        async with client(gw, bob) as b:
            b_task = data(await b.call_tool("run_coding_task", {"prompt": script({"text": "bob's"})}))
            refused = await b.call_tool("get_task_status", {"task_id": a_task["task_id"]})
            assert refused.is_error  # another caller's task stays unknown to bob
        deadline = time.monotonic() + 30
        ours = {a_task["task_id"], b_task["task_id"]}
        while {d.json["data"]["task_id"] for d in receiver.deliveries("/platform")} & ours != ours:
            assert time.monotonic() < deadline, receiver.deliveries("/platform")
            time.sleep(0.1)
        receiver.wait_for(1, "/callers/alice")
        time.sleep(1)
    to_alice = receiver.deliveries("/callers/alice")
    assert [d.json["data"]["task_id"] for d in to_alice] == [a_task["task_id"]]  # bob's never reaches her
    to_platform = [d for d in receiver.deliveries("/platform") if d.json["data"]["task_id"] in ours]
    assert len(to_platform) == 2 and all(verified(d)["type"] == "task.completed" for d in to_platform)
    assert to_alice[0].id in {d.id for d in to_platform}  # one event, one id, wherever it goes


def test_the_readmes_receiver_accepts_a_gateway_signature_and_refuses_a_forged_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = readme.split("**Verify the signature**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    serve = 'HTTPServer(("0.0.0.0", 9000), Receiver).serve_forever()'
    assert serve in example
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    scope: dict[str, Any] = {}
    exec(example.replace(serve, ""), scope)  # noqa: S102 - the README's own code, as a reader runs it
    server = scope["HTTPServer"](("127.0.0.1", 0), scope["Receiver"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        body = b'{"type": "task.completed", "timestamp": "t", "data": {"task_id": "x", "status": "completed"}}'
        headers = Signer(SECRET).headers("evt_1", body)
        assert httpx2.post(url, content=body, headers=headers).status_code == 204
        forged = Signer("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()).headers("evt_2", body)
        assert httpx2.post(url, content=body, headers=forged).status_code == 401
    finally:
        server.shutdown()
        server.server_close()
