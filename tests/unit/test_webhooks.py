"""Completion webhooks, the pure parts: which URLs pass, event ids and bodies, signatures,
the back-off, who sends, and deliveries against an in-memory receiver."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import anyio
import httpx2
import pytest
from standardwebhooks import Webhook

from opencode_mcp_gateway.config import ConfigError, load_settings
from opencode_mcp_gateway.edge.drain import Drain, HostWatch
from opencode_mcp_gateway.opencode import Session
from opencode_mcp_gateway.tasks.bounds import TEXT_LIMIT
from opencode_mcp_gateway.tasks.views import FileChange, PendingRequest, TaskView, WorkspaceView
from opencode_mcp_gateway.webhooks import (
    Deliverer,
    Duty,
    Job,
    Signer,
    Target,
    WebhookRefused,
    check_notify_url,
    event_id,
    events_of,
    retry_delays,
)
from opencode_mcp_gateway.webhooks.delivery import MAX_DELAY
from opencode_mcp_gateway.webhooks.events import MAX_FILES, end_ids
from opencode_mcp_gateway.webhooks.watcher import Watcher

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
ALLOWED = ["https://hooks.example.com/team"]


# -- policy ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/team",
        "https://hooks.example.com/team/",
        "https://hooks.example.com/team/ci?token=abc",
        "HTTPS://Hooks.Example.com/team/x",
    ],
)
def test_urls_under_an_allowed_prefix_pass(url: str) -> None:
    assert check_notify_url(f"  {url} ", ALLOWED) == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://hooks.example.com/teammate", "WEBHOOK_URL_ALLOWLIST permits"),  # a / boundary, not a string prefix
        ("https://hooks.example.com.evil.test/team", "WEBHOOK_URL_ALLOWLIST permits"),
        ("http://hooks.example.com/team", "WEBHOOK_URL_ALLOWLIST permits"),  # the scheme counts
        ("https://hooks.example.com:8443/team", "WEBHOOK_URL_ALLOWLIST permits"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("ftp://hooks.example.com/team", "only http:// and https://"),
        ("gopher://hooks.example.com/team", "only http:// and https://"),
        ("hooks.example.com/team", "only http:// and https://"),
        ("https://bot:s3cr3t@hooks.example.com/team", "credentials"),
        ("https://hooks.example.com/team/../admin", "'..'"),
        ("https://hooks.example.com/team/%2e%2e/admin", "encoded"),
        ("https://hooks.example.com/team/x#frag", "fragment"),
        ("https://hooks.example.com/team/a b", "spaces"),
        ("https://hooks.example.com/team/a\\b", "backslashes"),
    ],
)
def test_everything_else_is_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(WebhookRefused, match=says) as refused:
        check_notify_url(url, ALLOWED)
    assert "s3cr3t" not in str(refused.value)


def test_without_an_allow_list_every_notify_url_names_the_setting() -> None:
    with pytest.raises(WebhookRefused, match="WEBHOOK_URL_ALLOWLIST"):
        check_notify_url("https://hooks.example.com/team", [])


# -- events ---------------------------------------------------------------------------------
def view(**fields: Any) -> TaskView:
    base: dict[str, Any] = {
        "task_id": "ses_aaaaaaaaaaaa.msg_bbbbbbbbbbbb",
        "status": "completed",
        "session_id": "ses_aaaaaaaaaaaa",
    }
    return TaskView(**{**base, **fields})


def test_event_ids_are_derived_from_the_task_the_kind_and_the_request() -> None:
    one = event_id("ses_a.msg_b", "task.completed")
    assert one == event_id("ses_a.msg_b", "task.completed")  # any replica, any restart
    others = {
        event_id("ses_a.msg_c", "task.completed"),
        event_id("ses_a.msg_b", "task.failed"),
        event_id("w1:ses_a.msg_b", "task.completed"),
        event_id("ses_a.msg_b", "task.waiting_for_input", "per_1"),
        event_id("ses_a.msg_b", "task.waiting_for_input", "per_2"),
    }
    assert one not in others and len(others) == 5
    assert one.startswith("evt_") and "." not in one
    assert set(end_ids("ses_a.msg_b")) == {
        event_id("ses_a.msg_b", k) for k in ("task.completed", "task.failed", "task.aborted")
    }


def test_an_ended_task_makes_one_bounded_event() -> None:
    files = [FileChange(path=f"f{i}.py", status="modified", additions=1, deletions=0) for i in range(MAX_FILES + 5)]
    workspace = WorkspaceView(
        repository="https://git.example.com/app.git",
        ref="main",
        base_commit="a" * 40,
        branch="opencode/x",
        head_commit="b" * 40,
        directory="/secret/worktrees/wt-1",
        pushed=True,
    )
    ended = view(
        result="r" * (TEXT_LIMIT + 500), files_changed=files, workspace=workspace, completed_at="2026-01-02T03:04:05Z"
    )
    [event] = events_of(ended)
    body = json.loads(event.body)
    assert event.kind == body["type"] == "task.completed" and event.id == event_id(ended.task_id, "task.completed")
    assert body["timestamp"] == "2026-01-02T03:04:05Z"
    data = body["data"]
    assert len(data["result"]) < TEXT_LIMIT + 100 and "cut 500 more characters" in data["result"]
    assert len(data["files_changed"]) == MAX_FILES and data["files_truncated"] == 5
    assert data["workspace"]["branch"] == "opencode/x" and data["workspace"]["pushed"] is True
    assert "directory" not in data["workspace"]  # the worker's paths stay inside
    assert data["request"] is None and data["error"] is None


def test_each_open_request_is_its_own_event_and_a_running_task_has_none() -> None:
    asked = [
        PendingRequest(
            id="per_1", kind="permission", description="OpenCode asks permission for bash: ls", permission="bash"
        ),
        PendingRequest(id="que_2", kind="question", description="OpenCode asks: which?"),
    ]
    events = events_of(view(status="waiting_for_input", pending=asked))
    assert [json.loads(e.body)["data"]["request"]["id"] for e in events] == ["per_1", "que_2"]
    assert len({e.id for e in events}) == 2
    assert json.loads(events[0].body)["data"]["request"]["description"].startswith("OpenCode asks permission")
    assert events_of(view(status="running")) == []
    assert [e.kind for e in events_of(view(status="failed", error="x"))] == ["task.failed"]
    assert [e.kind for e in events_of(view(status="aborted"))] == ["task.aborted"]


# -- signing and the back-off -------------------------------------------------------------------
def test_signatures_verify_with_the_library() -> None:
    headers = Signer(SECRET).headers("evt_1", b'{"a":1}')
    assert Webhook(SECRET).verify(b'{"a":1}', headers) == {"a": 1}
    assert headers["webhook-signature"].startswith("v1,")
    assert "whsec_" not in repr(Signer(SECRET)) and SECRET.removeprefix("whsec_") not in repr(Signer(SECRET))


def test_the_back_off_grows_and_stops_growing() -> None:
    delays = retry_delays(0.5)
    assert [next(delays) for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    long = retry_delays(100)
    assert [next(long) for _ in range(6)][-1] == MAX_DELAY


# -- who sends ------------------------------------------------------------------------------------
def test_one_replica_sends_each_sessions_events() -> None:
    replicas = ["g0", "g1", "g2"]
    ready = {"g0": True, "g1": True, "g2": True}
    duties = [Duty(me, replicas, {}, lambda n: ready[n]) for me in replicas]
    sessions = [f"ses_{i:04d}" for i in range(60)]
    for sid in sessions:
        assert sum(d.mine("w0", sid) for d in duties) == 1
    assert len({duties[0].sender("w0", s) for s in sessions}) == 3  # shared out
    ready["g1"] = False  # g1 stops: its share moves, the others' stay where they were
    before = {s: Duty("g0", replicas, {}, lambda n: True).sender("w0", s) for s in sessions}
    for sid in sessions:
        assert sum(d.mine("w0", sid) for d in duties) == 1
        after = duties[0].sender("w0", sid)
        assert after != "g1" and (before[sid] == "g1" or after == before[sid])


def test_the_workers_host_sends_while_it_is_ready() -> None:
    ready = {"g0": True, "g1": True}
    hosts = {"w0": "g0", "w1": "g1"}
    g0, g1 = (Duty(me, ["g0", "g1"], hosts, lambda n: ready[n]) for me in ("g0", "g1"))
    assert g0.mine("w0", "ses_x") and g1.mine("w1", "ses_x") and not g0.mine("w1", "ses_x")
    assert g0.hosted_elsewhere("w1") and not g0.hosted_elsewhere("w0")
    ready["g1"] = False
    assert g0.mine("w1", "ses_x") and not g0.hosted_elsewhere("w1")
    ready["g0"] = False  # nobody ready: each sends (at least once beats never)
    assert g0.mine("w1", "ses_x") and g1.mine("w1", "ses_x")
    assert Duty("g0").mine("w5", "ses_y")  # no peers: this replica sends everything


# -- deliveries -------------------------------------------------------------------------------------
def job(url: str = "https://hooks.example.com/team") -> Job:
    [event] = events_of(view(result="done"))
    return Job(event, "caller", url, "ses_aaaaaaaaaaaa")


async def deliver(handler: Any, *, retry_seconds: float = 2.0, **kwargs: Any) -> list[str]:
    """Delivers one job through `handler`; the results handed to `done`."""
    results: list[str] = []
    deliverer = Deliverer(
        Signer(SECRET),
        retry_seconds=retry_seconds,
        attempt_timeout=0.5,
        backoff_seconds=0.05,
        transport=httpx2.MockTransport(handler),
        **kwargs,
    )

    async def done(_: Job, result: str) -> None:
        results.append(result)

    async with anyio.create_task_group() as tg:
        tg.start_soon(deliverer.run)
        assert deliverer.enqueue(job(), done)
        with anyio.fail_after(10):
            while not results:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    await deliverer.aclose()
    return results


@pytest.mark.anyio
async def test_failed_attempts_are_retried_under_the_same_id_each_signed_afresh() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(503 if len(seen) <= 2 else 204)

    assert await deliver(handler) == ["delivered"]
    assert len(seen) == 3 and len({r.headers["webhook-id"] for r in seen}) == 1
    for request in seen:
        assert Webhook(SECRET).verify(request.content, dict(request.headers))["type"] == "task.completed"


@pytest.mark.anyio
async def test_a_redirect_is_never_followed_and_the_delivery_is_given_up_in_time() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(307, headers={"location": "https://elsewhere.example.com/"})

    assert await deliver(handler, retry_seconds=0.3) == ["failed"]
    assert len(seen) >= 2 and set(seen) == {"https://hooks.example.com/team"}


@pytest.mark.anyio
async def test_pending_deliveries_are_bounded() -> None:
    deliverer = Deliverer(Signer(SECRET), retry_seconds=1, attempt_timeout=1, backoff_seconds=1, max_pending=1)

    async def done(_: Job, result: str) -> None:
        pass

    assert deliverer.enqueue(job("https://a.example.com/"), done)
    assert deliverer.enqueue(job("https://a.example.com/"), done)  # the same one again: already under way
    other = Job(events_of(view(status="failed"))[0], "caller", "https://a.example.com/", "ses_x")
    assert not deliverer.enqueue(other, done) and deliverer.pending == 1
    await deliverer.aclose()


# -- records and settings ------------------------------------------------------------------------------
def test_a_rewritten_notify_url_outside_the_allow_list_gets_nothing() -> None:
    """The agent holds OpenCode's password and can PATCH the record: it is checked again."""
    watcher = Watcher.__new__(Watcher)
    watcher._allow_list, watcher._deployment_url = ALLOWED, None
    assert watcher._destinations(Target(url="https://attacker.example.net/x")) == {}
    assert watcher._destinations(Target(url="https://hooks.example.com/team/x")) == {
        "caller": "https://hooks.example.com/team/x"
    }


def test_the_record_is_read_from_the_sessions_metadata() -> None:
    session = Session(
        id="ses_1",
        metadata={
            "notify": {
                "url": "https://h/x",
                "task": "msg_1",
                "deployment": True,
                "sent": {"evt_1": {"caller": "delivered"}},
            }
        },
    )
    target = Target.of(session)
    assert target is not None and target.task == "msg_1" and target.deployment
    assert target.settled("evt_1", "caller") and not target.settled("evt_1", "deployment")
    assert Target.of(Session(id="ses_2", metadata={"owner": "x"})) is None


def test_a_webhook_setting_needs_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEBHOOK_URL_ALLOWLIST", "WEBHOOK_URL"):
        monkeypatch.setenv(name, "https://hooks.example.com/")
        with pytest.raises(ConfigError, match="WEBHOOK_SECRET is required"):
            load_settings()
        monkeypatch.delenv(name)
    monkeypatch.setenv("WEBHOOK_URL", "https://hooks.example.com/")
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    assert load_settings().webhooks_enabled


@pytest.mark.parametrize(
    "bad", ["plain-text-secret-of-some-length", "whsec_not*base64", "whsec_" + base64.b64encode(b"short").decode()]
)
def test_a_malformed_secret_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", bad)
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET: must be whsec_") as err:
        load_settings()
    assert bad not in str(err.value)


def test_the_deployment_url_carries_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("WEBHOOK_URL", "https://bus:p4ss@hooks.example.com/")
    with pytest.raises(ConfigError, match="WEBHOOK_URL: must not carry credentials") as err:
        load_settings()
    assert "p4ss" not in str(err.value)


@pytest.mark.anyio
async def test_the_sender_choice_follows_every_peers_readiness_and_this_replicas_drain() -> None:
    """With webhooks on, every peer is asked (not only hosts): one with no worker can send too."""
    status = {"g1": 200, "g2": 200}

    def readyz(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status[request.url.host or ""])

    drain = Drain("g0")
    peers = {g: f"http://{g}:8080" for g in ("g0", "g1", "g2")}
    watch = HostWatch({}, {}, drain, peers, every_peer=True, transport=httpx2.MockTransport(readyz))
    try:
        assert set(watch.peers) == {"g1", "g2"}
        duty = Duty("g0", list(peers), {}, watch.ready)
        sessions = [f"ses_{i:04d}" for i in range(30)]
        assert {duty.sender("w0", s) for s in sessions} == {"g0", "g1", "g2"}
        status["g1"] = 503
        for peer in watch.peers.values():
            await peer.check()
        assert {duty.sender("w0", s) for s in sessions} == {"g0", "g2"}
        drain.start()  # this replica stops: its share goes to the ready one
        assert {duty.sender("w0", s) for s in sessions} == {"g2"}
    finally:
        await watch.aclose()
    hosts_only = HostWatch({}, {}, Drain("g0"), peers)
    assert not hosts_only.peers  # without webhooks, only hosts are asked
    await hosts_only.aclose()


def test_a_refusal_never_repeats_the_query_or_the_credentials() -> None:
    """The SDK logs a tool error's message: a receiver's token in the query must not get there."""
    for url in ("https://hooks.example.com/other?token=t0k3n", "ftp://u:p4ss@hooks.example.com/team?token=t0k3n"):
        with pytest.raises(WebhookRefused) as refused:
            check_notify_url(url, ALLOWED)
        assert "t0k3n" not in str(refused.value) and "p4ss" not in str(refused.value)
        assert "hooks.example.com" in str(refused.value)
