"""A stopping pod's worker leaves placement before it stops (drain.py): which replica hosts
which worker, placement skipping a worker whose host stops, the peers' readiness, and the
stop signal that starts a drain."""

from __future__ import annotations

import os
import signal
import time

import httpx2
import pytest
import uvicorn
from sse_starlette.sse import AppStatus

from opencode_mcp_gateway.config import ConfigError, load_settings
from opencode_mcp_gateway.edge.drain import Drain, HostWatch
from opencode_mcp_gateway.edge.server import GatewayServer
from opencode_mcp_gateway.fleet.placement import Placement, PoolFull
from tests.unit.test_pool import load, status

pytestmark = pytest.mark.anyio
KEY = "k" * 32
CHART_PEERS = ",".join(f"ocgw-{i}=http://ocgw-{i}.ocgw-workers.ns.svc:8080" for i in range(3))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in list(os.environ):
        if name.startswith(("OPENCODE_", "WORKER_", "GATEWAY_", "SHUTDOWN_", "REQUEST_STATE")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    # A server's stop also tells sse-starlette, process-wide, to end every event stream (its
    # patch of uvicorn's handle_exit): undone after each test, or later in-process MCP tests
    # get their streams cut.
    monkeypatch.setattr(AppStatus, "should_exit", False)


# -- who hosts which worker -------------------------------------------------------------------
def test_the_charts_pods_pair_worker_i_with_gateway_i() -> None:
    s = load_settings(
        opencode_worker_url_template="http://ocgw-{i}.ocgw-workers.ns.svc:4096",
        opencode_worker_count=3,
        gateway_id="ocgw-1",
        gateway_peers=CHART_PEERS,
        request_state_key=KEY,
    )
    assert s.worker_hosts == {"w0": "ocgw-0", "w1": "ocgw-1", "w2": "ocgw-2"}
    assert s.shutdown_drain_seconds == 0  # stops at once unless told to drain


def test_listed_workers_are_paired_only_when_told() -> None:
    pool = {"opencode_workers": "w0=http://a:1,w1=http://b:1", "gateway_peers": "g0=http://a:8,g1=http://b:8"}
    assert load_settings(**pool, request_state_key=KEY).worker_hosts == {}  # judged by their own health
    paired = load_settings(**pool, request_state_key=KEY, worker_gateways="w1=g1")
    assert paired.worker_hosts == {"w1": "g1"}
    assert load_settings().worker_hosts == {}  # one gateway, one OpenCode: as before


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("w0=g0,w7=g1", "names worker 'w7', which is not one of the workers"),
        ("w0=g9", "names gateway 'g9', which is not one of GATEWAY_PEERS"),
        ("w0", "WORKER_GATEWAYS: each entry must be worker=gateway"),
        ("w0=g0,w0=g1", "worker w0 is named twice"),
    ],
)
def test_a_bad_worker_gateways_stops_start_up(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(
            opencode_workers="w0=http://a:1,w1=http://b:1",
            gateway_peers="g0=http://a:8,g1=http://b:8",
            request_state_key=KEY,
            worker_gateways=value,
        )


# -- placement -------------------------------------------------------------------------------
class FakeHost:
    def __init__(self, name: str) -> None:
        self.name = name
        self.accepting = True


async def test_a_worker_whose_pod_stops_gets_no_new_task_but_its_follow_ups() -> None:
    w0, w1 = load("w0"), load("w1")
    w0.host, w1.host = FakeHost("g0"), FakeHost("g1")
    for sid in ("ses_a", "ses_b"):
        w0.feed(status(sid, "busy"))  # w1 is the least loaded
    placement = Placement([w0, w1], max_tasks=8, wait_seconds=0)
    assert (await placement.acquire()).name == "w1"
    w1.host.accepting = False  # g1 stops
    assert [(await placement.acquire()).name for _ in range(4)] == ["w0"] * 4
    assert (await placement.acquire(w1)).name == "w1"  # a follow-up of one of its tasks still goes there
    w0.host.accepting = False
    with pytest.raises(
        PoolFull, match=r"every OpenCode worker that answers is stopping with its pod \(w0 with gateway g0"
    ):
        await placement.acquire()
    w1.host.accepting = True  # its pod came back
    assert (await placement.acquire()).name == "w1"


async def test_a_hosted_worker_follows_its_gateways_readiness() -> None:
    ready = {"g1": 200, "g2": 200}

    def readyz(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(ready[request.url.host], text="ready" if ready[request.url.host] == 200 else "stopping")

    loads = {"w0": load("w0"), "w1": load("w1"), "w2": load("w2"), "w3": load("w3")}
    drain = Drain("g0")
    peers = {g: f"http://{g}:8080" for g in ("g0", "g1", "g2")}
    hosts = {"w0": "g0", "w1": "g1", "w2": "g2"}  # w3: no host
    watch = HostWatch(hosts, loads, drain, peers, transport=httpx2.MockTransport(readyz))
    try:
        assert loads["w0"].host is drain and loads["w3"].host is None
        ready["g1"] = 503
        for peer in watch.peers.values():
            await peer.check()
        placement = Placement(list(loads.values()), max_tasks=8, wait_seconds=0)
        assert {(await placement.acquire()).name for _ in range(9)} == {"w0", "w2", "w3"}
        drain.start()  # this replica stops too
        assert {(await placement.acquire()).name for _ in range(6)} == {"w2", "w3"}
    finally:
        await watch.aclose()


async def test_a_peer_that_does_not_answer_hosts_no_new_task() -> None:
    def refused(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    w1 = load("w1")
    watch = HostWatch(
        {"w1": "g1"}, {"w1": w1}, Drain("g0"), {"g1": "http://g1:8080"}, transport=httpx2.MockTransport(refused)
    )
    try:
        await watch.peers["g1"].check()
        assert w1.host is not None and not w1.host.accepting
    finally:
        await watch.aclose()


# -- the stop signal -------------------------------------------------------------------------
def server(drain_seconds: float, calls: list[str]) -> GatewayServer:
    config = uvicorn.Config(app=lambda *_: None, log_config=None)
    return GatewayServer(
        config,
        on_exit=lambda: calls.append("exit"),
        drain_seconds=drain_seconds,
        on_drain=lambda: calls.append("drain"),
    )


def test_without_a_drain_the_stop_signal_stops_at_once_as_before() -> None:
    calls: list[str] = []
    s = server(0, calls)
    s.handle_exit(signal.SIGTERM, None)
    assert s.should_exit and calls == ["exit"]


def test_a_stop_signal_drains_first_then_stops() -> None:
    calls: list[str] = []
    s = server(0.3, calls)
    s.handle_exit(signal.SIGTERM, None)
    assert calls == ["drain"] and not s.should_exit  # out of placement, still serving
    deadline = time.monotonic() + 5
    while not s.should_exit and time.monotonic() < deadline:
        time.sleep(0.02)
    assert s.should_exit and calls == ["drain", "exit"]


def test_a_second_stop_signal_ends_the_drain_at_once() -> None:
    calls: list[str] = []
    s = server(60, calls)
    s.handle_exit(signal.SIGTERM, None)
    s.handle_exit(signal.SIGTERM, None)
    assert s.should_exit and calls == ["drain", "exit"]
