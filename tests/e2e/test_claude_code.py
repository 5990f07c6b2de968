"""What a real client does with the gateway's OAuth: Claude Code, offline with a scratch HOME.

Opt-in (`make claude-check` installs Claude Code, 235 MB, into tests/support/claude): told
only the gateway's URL, Claude Code meets the 401, reads the protected resource metadata,
finds the authorization server, registers itself there (RFC 7591) and then waits for the
user's browser sign-in. With an API key in a header it connects at once.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.oidc_provider import OpenIDProvider
from tests.support.procs import REPO, Gateway, OpenCodeServer

pytestmark = [pytest.mark.e2e]

CLAUDE = Path(os.environ.get("CLAUDE_BIN") or REPO / "tests/support/claude/node_modules/.bin/claude")
API_KEY = "claude-code-key-0123456789"

if not os.access(CLAUDE, os.X_OK):
    pytest.skip("Claude Code is not installed: `make claude-check` installs it and runs this", allow_module_level=True)


@pytest.fixture
def oauth_gateway(tmp_path: Path, opencode: OpenCodeServer) -> Iterator[tuple[Gateway, OpenIDProvider]]:
    idp = OpenIDProvider(tmp_path / "idp", {"alice": "tasks"}, registration=True).start()
    keys = tmp_path / "keys"
    keys.write_text(f"claude {API_KEY}\n")
    env = {"OPENCODE_BASE_URL": opencode.url, "OAUTH_ISSUER": idp.issuer, "MCP_API_KEYS_FILE": str(keys)}
    gw = Gateway(tmp_path / "gw", env)
    gw.env["PUBLIC_URL"] = gw.url
    try:
        yield gw.start(), idp
    finally:
        gw.stop()
        idp.stop()


def claude(home: Path, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_API_KEY": "offline-dummy",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",  # nothing listens: no model is needed here
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "BROWSER": "/bin/true",
    }
    done = subprocess.run([str(CLAUDE), *args], env=env, cwd=home, capture_output=True, text=True, timeout=120)
    return done.stdout + done.stderr


def test_claude_code_discovers_the_authorization_server(
    oauth_gateway: tuple[Gateway, OpenIDProvider], tmp_path: Path
) -> None:
    gw, idp = oauth_gateway
    home = tmp_path / "home"
    home.mkdir()
    claude(home, "mcp", "add", "--transport", "http", "gw", gw.mcp_url)
    claude(
        home, "mcp", "add", "--transport", "http", "gw-key", gw.mcp_url, "--header", f"Authorization: Bearer {API_KEY}"
    )
    listed = claude(home, "mcp", "list")
    lines = {line.split(":", 1)[0]: line for line in listed.splitlines() if line.startswith("gw")}
    assert "Needs authentication" in lines["gw"], listed
    assert "Connected" in lines["gw-key"], listed
    gateway_log = gw.logs()
    assert '"GET /.well-known/oauth-protected-resource/mcp HTTP/1.1" 200' in gateway_log
    asked = idp.requests()
    assert any(r.startswith("GET /.well-known/") and r.endswith(" 200") for r in asked), asked
    assert "POST /reg 201" in asked, asked  # it registered itself and now needs the user's sign-in
