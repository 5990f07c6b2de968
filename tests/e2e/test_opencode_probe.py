"""The liveness probe of every OpenCode container (the chart's and each sandbox pod's), run as
the kubelet runs it: the exact command, in the container's environment, against the real
`opencode serve`. It passes while OpenCode answers, and fails when OpenCode hangs (stopped with
SIGSTOP: the port still accepts connections, nothing answers) or the password is wrong."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from opencode_mcp_gateway.fleet.sandboxes.kube_objects import PROBE_COMMAND
from tests.support.fake_llm import FakeLLM
from tests.support.procs import OpenCodeServer

pytestmark = pytest.mark.e2e
PASSWORD = "probe-password-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeLLM) -> Iterator[OpenCodeServer]:
    opencode = OpenCodeServer(tmp_path_factory.mktemp("probe"), fake_llm.url)  # type: ignore[attr-defined]
    opencode.env["OPENCODE_SERVER_PASSWORD"] = PASSWORD
    yield opencode.start(health_auth=("opencode", PASSWORD))
    opencode.stop()


def probe(port: int, **env: str) -> subprocess.CompletedProcess[bytes]:
    """The probe as the container runs it; `python3` is the image's, the test's interpreter here."""
    command = [sys.executable, *PROBE_COMMAND[1:]]
    clean = {"PATH": os.environ["PATH"], "OPENCODE_PROBE_PORT": str(port), **env}
    return subprocess.run(command, env=clean, capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize("variable", ["OPENCODE_PASSWORD", "OPENCODE_SERVER_PASSWORD"], ids=["chart", "sandbox"])
def test_the_probe_passes_while_opencode_answers(server: OpenCodeServer, variable: str) -> None:
    result = probe(server.port, **{variable: PASSWORD})
    assert result.returncode == 0, result.stderr


def test_the_probe_fails_with_a_wrong_password(server: OpenCodeServer) -> None:
    assert probe(server.port, OPENCODE_PASSWORD="not-the-password").returncode != 0


def test_the_probe_fails_when_opencode_hangs(server: OpenCodeServer) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = probe(server.port, OPENCODE_PASSWORD=PASSWORD)
        assert result.returncode != 0 and b"timed out" in result.stderr
        assert time.monotonic() - started < 15  # within the probe's timeoutSeconds (5) and some start-up
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert probe(server.port, OPENCODE_PASSWORD=PASSWORD).returncode == 0  # and passes again once it answers
