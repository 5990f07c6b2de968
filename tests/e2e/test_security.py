"""Secure by default (issue 9): each finding, tried as an attacker would, against the real
gateway and `opencode serve`."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.e2e.test_http import post_init, spawn_env, wait_ready
from tests.e2e.test_long_tasks import TASK_ID, Progress, legacy_client, modern_client
from tests.support.client import INITIALIZE as INIT
from tests.support.client import MCP_HEADERS, data, error_text, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.procs import Gateway, OpenCodeServer, free_port, run_to_exit

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


# -- 6. a stopping gateway never aborts a blocking task ------------------------------------------


async def blocking_call_through_sigterm(gw: Gateway, connect: Any, protocol: str) -> str:
    """Start a blocking task and SIGTERM the gateway mid-call; the task id.

    On 2025-11-25 the response stream ends at the signal and the client at once sends its
    session DELETE (here: leaves right after the signal, the tightest case); whether that
    reaches the gateway before it stops listening was the race. On 2026-07-28 the client
    keeps waiting until uvicorn gives up draining."""
    progress = Progress()
    async with connect(gw.mcp_url) as client:
        assert getattr(client, "session", client).protocol_version == protocol

        async def call() -> None:
            # the stream ends without a response: an error here is expected
            with anyio.move_on_after(30), contextlib.suppress(Exception):
                await client.call_tool(
                    "run_coding_task",
                    {"prompt": script({"text": "outlived the gateway", "hang": 8})},
                    progress_callback=progress,
                )

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            with anyio.fail_after(20):
                while not progress.messages:
                    await anyio.sleep(0.05)
            assert gw.proc is not None
            gw.proc.send_signal(signal.SIGTERM)
            if protocol == "2025-11-25":
                tg.cancel_scope.cancel()
    assert gw.proc is not None
    code = await anyio.to_thread.run_sync(gw.proc.wait)
    assert code == 0, gw.logs()[-2000:]
    found = TASK_ID.search(progress.messages[0])
    assert found, progress.messages
    return found.group(0)


@pytest.mark.parametrize(
    ("connect", "protocol"), [(legacy_client, "2025-11-25"), (modern_client, "2026-07-28")], ids=["2025", "2026"]
)
async def test_sigterm_during_a_blocking_call_never_aborts_the_task(
    tmp_path: Path, opencode: OpenCodeServer, gateway: Gateway, connect: Any, protocol: str
) -> None:
    """Five stops at once: the race (does the client's DELETE reach the draining gateway
    first?) went the wrong way in 6 of 11 tries before."""
    gateways = [Gateway(tmp_path / str(i), {"OPENCODE_BASE_URL": opencode.url}).start() for i in range(5)]
    task_ids: list[str] = []

    async def one(gw: Gateway) -> None:
        task_ids.append(await blocking_call_through_sigterm(gw, connect, protocol))

    try:
        async with anyio.create_task_group() as tg:
            for gw in gateways:
                tg.start_soon(one, gw)
    finally:
        for gw in gateways:
            gw.stop()
    async with mcp_session(gateway.mcp_url) as fresh:  # another gateway process reads the outcome
        for task_id in task_ids:
            final = data(await fresh.call_tool("get_task_status", {"task_id": task_id, "wait_seconds": 30}))
            assert final["status"] == "completed" and final["result"] == "outlived the gateway", final
    for gw in gateways:
        assert "aborting" not in gw.logs()


# -- 2. WORKSPACE_ROOT cannot be escaped --------------------------------------------------------

ESCAPES = {
    "backslashes": "esc" + "\\.." * 13 + "\\etc",
    "percent-escapes": "esc2" + "%2f.." * 13 + "%2fetc",
    "to-the-grandparent": "esc3\\..\\..",
}


async def test_directory_names_opencode_would_reinterpret_cannot_escape_the_root(
    gateways: object, opencode: OpenCodeServer
) -> None:
    root = opencode.root / "escape-root"
    root.mkdir()
    for name in ESCAPES.values():
        (root / name).mkdir()  # what any agent can do inside the root
    (root / "innocent-link").symlink_to(root / ESCAPES["backslashes"])
    gw = gateways.get(WORKSPACE_ROOT=str(root))  # type: ignore[attr-defined]
    async with mcp_session(gw.mcp_url) as s:
        for name in [*ESCAPES.values(), "innocent-link", str(root / ESCAPES["backslashes"])]:
            for tool in ("run_coding_task", "run_coding_task_async"):
                result = await s.call_tool(tool, {"prompt": script({"text": "pwd"}), "directory": name})
                assert result.is_error, (tool, name, result.structured_content)
                assert "would read as a different path" in error_text(result)
    sessions = httpx2.get(f"{opencode.url}/session", params={"directory": "/etc"}).json()
    assert not [x for x in sessions if x.get("directory") == "/etc"]


async def test_follow_ups_are_held_to_the_root(gateways: object, gateway: Gateway, opencode: OpenCodeServer) -> None:
    """A task started elsewhere (another gateway without WORKSPACE_ROOT) cannot be continued
    through a gateway whose root does not contain it."""
    async with mcp_session(gateway.mcp_url) as s:
        outside = data(await s.call_tool("run_coding_task", {"prompt": script({"text": "outside"})}))
    assert outside["directory"] == str(opencode.workspace)
    root = opencode.root / "follow-up-root"
    root.mkdir()
    gw = gateways.get(WORKSPACE_ROOT=str(root))  # type: ignore[attr-defined]
    async with mcp_session(gw.mcp_url) as s:
        refused = await s.call_tool("run_coding_task", {"prompt": "more", "task_id": outside["task_id"]})
    assert refused.is_error and "outside WORKSPACE_ROOT" in error_text(refused)


# -- 3. sessions cannot be hoarded ---------------------------------------------------------------


def open_sessions(url: str, count: int, *, source: str, **headers: str) -> list[int]:
    """`count` initialize requests from `source` (a loopback address), never closed."""
    with httpx2.Client(transport=httpx2.HTTPTransport(local_address=source), timeout=10) as http:
        return [http.post(url, json=INIT, headers={**MCP_HEADERS, **headers}).status_code for _ in range(count)]


async def test_one_client_cannot_lock_the_others_out(gateways: object) -> None:
    """Scaled down: the flood that took 10,000 sessions for 30 minutes, at a cap of 12."""
    gw = gateways.get(MAX_SESSIONS="12", MAX_SESSIONS_PER_CLIENT="5")  # type: ignore[attr-defined]
    flood = open_sessions(gw.mcp_url, 30, source="127.0.0.2")
    assert flood == [200] * 5 + [429] * 25, flood
    # Another client (another address, no token configured) still gets in and works.
    async with mcp_session(gw.mcp_url) as s:
        assert data(await s.call_tool("health_check", {}))["gateway"] == "ok"
    # The process-wide cap still holds when several clients hoard.
    assert open_sessions(gw.mcp_url, 10, source="127.0.0.3") == [200] * 5 + [429] * 5
    # 5 + 5 + 2 = 12 (the well-behaved client closed its session when it left)
    assert open_sessions(gw.mcp_url, 3, source="127.0.0.4") == [200, 200, 503]


async def test_unauthenticated_requests_never_open_sessions(gateways: object) -> None:
    gw = gateways.get(MCP_BEARER_TOKEN="quota-token", MAX_SESSIONS="3", MAX_SESSIONS_PER_CLIENT="2")  # type: ignore[attr-defined]
    assert set(open_sessions(gw.mcp_url, 20, source="127.0.0.5")) == {401}
    assert set(open_sessions(gw.mcp_url, 20, source="127.0.0.5", authorization="Bearer wrong")) == {401}
    # Had any of those opened a session, the owner of the token would find the cap taken.
    assert open_sessions(gw.mcp_url, 3, source="127.0.0.6", authorization="Bearer quota-token") == [200, 200, 429]


async def test_idle_sessions_expire_and_free_the_share(gateways: object) -> None:
    gw = gateways.get(MAX_SESSIONS="4", MAX_SESSIONS_PER_CLIENT="2", SESSION_IDLE_TIMEOUT_SECONDS="1.5")  # type: ignore[attr-defined]
    assert open_sessions(gw.mcp_url, 3, source="127.0.0.7") == [200, 200, 429]
    await anyio.sleep(3)
    assert open_sessions(gw.mcp_url, 3, source="127.0.0.7") == [200, 200, 429]


# -- 4. the agent cannot read the gateway's secrets -----------------------------------------------


def read_environ(generations: int) -> dict[str, object]:
    """A bash call printing the environment of the agent's shell (0), of its parent,
    opencode serve (1), or of that one's parent, the gateway (2)."""
    command = "p=$$; " + "p=$(awk '{print $4}' /proc/$p/stat); " * generations
    # The whole command line: a clone's path may be long (CI's is), and a cut one
    # would hide the gateway's name that the test looks for.
    command += "echo \"== pid $p: $(tr '\\0' ' ' < /proc/$p/cmdline)\"; tr '\\0' '\\n' < /proc/$p/environ"
    return {"tool": "bash", "args": {"command": command, "description": f"read environ {generations}"}}


async def test_the_agent_cannot_read_the_gateways_secrets(tmp_path: Path) -> None:
    api_key, token = "sk-provider-key-never-shown", "bearer-token-never-shown"
    llm = FakeLLM(require_key=api_key)  # the upstream still gets the real key
    llm.url = llm.start()  # type: ignore[attr-defined]
    workspace = tmp_path / "ws"
    workspace.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    env = spawn_env(llm, free_port(), workspace, tmp_path / "state", api_key=api_key)
    env.update(MCP_BEARER_TOKEN=token, PERMISSION_POLICY="allow", LOG_LEVEL="DEBUG", MAX_OUTPUT_BYTES="1000000")
    gw = Gateway(tmp_path, env, args=("--spawn-opencode",))
    # A short environment, so that each one read fits a tool output uncut.
    gw.env = {k: v for k, v in gw.env.items() if k in (*env, "PATH", "HOME", "LANG", "PORT", "HOST")}
    gw.start()
    try:
        wait_ready(gw)
        steps = (read_environ(0), read_environ(1), read_environ(2), {"text": "read"})
        async with mcp_session(gw.mcp_url, headers={"Authorization": f"Bearer {token}"}) as s:
            done = data(await s.call_tool("run_coding_task", {"prompt": script(*steps)}))
            page = data(await s.call_tool("get_task_messages", {"task_id": done["task_id"], "limit": 1000}))
        assert done["status"] == "completed" and done["result"] == "read", done
        assert not page["truncated"]
        output = json.dumps(page)
        # What was read: every ancestor's environment (as root here, even a non-dumpable one's).
        assert output.count("OPENCODE_SERVER_PASSWORD=") == 2 and "opencode-mcp-gateway" in output, output
        assert "PERMISSION_POLICY=allow" in output  # only the gateway's own environment has it
        assert api_key not in output and token not in output
        assert gw.proc is not None
        environ = Path(f"/proc/{gw.proc.pid}/environ").read_bytes()
        assert api_key.encode() not in environ and token.encode() not in environ
    finally:
        gw.stop()
        llm.stop()
    logs = gw.logs()
    assert "DEBUG" in logs and api_key not in logs and token not in logs
    assert "read environ" not in logs  # no library logs message bodies, even at DEBUG
