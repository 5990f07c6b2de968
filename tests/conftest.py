from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_llm import FakeLLM
from tests.support.procs import Gateway, OpenCodeServer, stop_leftovers


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    llm = FakeLLM()
    llm.url = llm.start()  # type: ignore[attr-defined]
    yield llm
    llm.stop()


@pytest.fixture(scope="session")
def opencode(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeLLM) -> Iterator[OpenCodeServer]:
    server = OpenCodeServer(tmp_path_factory.mktemp("opencode"), fake_llm.url).start()  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateways(tmp_path_factory: pytest.TempPathFactory, opencode: OpenCodeServer) -> Iterator[GatewayPool]:
    pool = GatewayPool(tmp_path_factory.mktemp("gateways"), opencode)
    yield pool
    pool.stop_all()


class GatewayPool:
    """Gateways pointed at the shared OpenCode, one per distinct configuration."""

    def __init__(self, root: Path, opencode: OpenCodeServer) -> None:
        self.root = root
        self.opencode = opencode
        self.running: dict[tuple[tuple[str, str], ...], Gateway] = {}

    def get(self, **env: str) -> Gateway:
        key = tuple(sorted(env.items()))
        if key not in self.running:
            full = {"OPENCODE_BASE_URL": self.opencode.url, **env}
            self.running[key] = Gateway(self.root, full).start()
        return self.running[key]

    def stop_all(self) -> None:
        for gateway in self.running.values():
            gateway.stop()


@pytest.fixture(scope="session")
def gateway(gateways: GatewayPool) -> Gateway:
    return gateways.get()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No gateway or OpenCode outlives the test run, whatever a failing test left behind."""
    stop_leftovers()
