"""Secure by default (issue 9): each finding, tried as an attacker would, against the real
gateway and `opencode serve`."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests.e2e.test_http import INIT, MCP_HEADERS, post_init
from tests.support.procs import Gateway, OpenCodeServer, run_to_exit

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


# -- 1. the default configuration is no open door, and DNS rebinding is refused --------------


def test_default_all_interfaces_without_auth_refuses_to_start(tmp_path: Path) -> None:
    proc = run_to_exit({}, tmp_path)  # HOST defaults to 0.0.0.0, no token
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "MCP_BEARER_TOKEN" in line and "ALLOW_UNAUTHENTICATED=true" in line and "HOST=0.0.0.0" in line


async def test_dns_rebinding_request_is_refused(tmp_path: Path, opencode: OpenCodeServer) -> None:
    """The attacker's page: Host and Origin both name the attacker's domain."""
    env = {"OPENCODE_BASE_URL": opencode.url, "HOST": "0.0.0.0", "ALLOW_UNAUTHENTICATED": "true"}
    gw = Gateway(tmp_path, env).start()
    try:
        rebound = post_init(gw.mcp_url, host="attacker.test:8080", origin="http://attacker.test:8080")
        assert rebound.status_code == 403 and "ALLOWED_ORIGINS" in rebound.json()["error"]
        assert "mcp-session-id" not in rebound.headers
        assert post_init(gw.mcp_url, host="attacker.test:8080").status_code == 200  # no Origin: not a browser
    finally:
        gw.stop()
    assert "ALLOW_UNAUTHENTICATED=true" in gw.logs()


async def test_allowed_origins_and_malformed_origins(gateways: object) -> None:
    gw = gateways.get(ALLOWED_ORIGINS="https://app.example.com")  # type: ignore[attr-defined]
    assert post_init(gw.mcp_url, origin="https://app.example.com").status_code == 200
    assert post_init(gw.mcp_url, origin="http://localhost:3000").status_code == 403  # only the listed ones
    assert post_init(gw.mcp_url, origin="https://user:pw@app.example.com").status_code == 403
    twice = httpx2.post(
        gw.mcp_url,
        json=INIT,
        headers=[*MCP_HEADERS.items(), ("origin", "https://app.example.com"), ("origin", "https://evil.example")],
        timeout=10,
    )
    assert twice.status_code == 403 and "several Origin headers" in twice.json()["error"]


# -- 5. errors never echo a secret -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["ftp://user:SECRET@127.0.0.1:1", "http://user:SECRET@", "user:SECRET@host:4096"],
    ids=["ftp", "nohost", "noscheme"],
)
def test_invalid_url_never_shows_its_password(url: str, tmp_path: Path) -> None:
    proc = run_to_exit({"OPENCODE_BASE_URL": url, "HOST": "127.0.0.1"}, tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "OPENCODE_BASE_URL" in line and "SECRET" not in proc.stderr + proc.stdout
