"""The HTTP edge: bearer token, Host and Origin checks, probes, start-up errors, spawn mode."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.support.client import INITIALIZE, MCP_HEADERS, data, error_text, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.procs import Gateway, OpenCodeServer, free_port, opencode_binary, run_to_exit

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def post_init(url: str, **headers: str) -> httpx2.Response:
    return httpx2.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=10)


async def test_bearer_token_guards_mcp_but_not_the_probes(gateways: object) -> None:
    gw = gateways.get(MCP_BEARER_TOKEN="s3cret-token")  # type: ignore[attr-defined]
    missing = post_init(gw.mcp_url)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert post_init(gw.mcp_url, authorization="Bearer wrong-token").status_code == 401
    assert post_init(gw.mcp_url, authorization="Basic czNjcmV0LXRva2Vu").status_code == 401
    assert post_init(gw.mcp_url, authorization="Bearer s3cret-token").status_code == 200
    assert httpx2.get(gw.url + "/healthz").status_code == 200
    assert httpx2.get(gw.url + "/readyz").text == "ready"
    async with mcp_session(gw.mcp_url, headers={"Authorization": "Bearer s3cret-token"}) as s:
        assert data(await s.call_tool("health_check", {}))["opencode"]["healthy"] is True
    assert "s3cret-token" not in gw.logs()


async def test_host_and_origin_checks(gateways: object) -> None:
    gw = gateways.get(ALLOWED_HOSTS="gateway.example.com,localhost")  # type: ignore[attr-defined]
    assert post_init(gw.mcp_url, host="evil.example").status_code == 421
    assert post_init(gw.mcp_url, host="gateway.example.com").status_code == 200
    assert post_init(gw.mcp_url, host=f"localhost:{gw.port}").status_code == 200
    assert post_init(gw.mcp_url, host="127.0.0.1").status_code == 421  # not listed
    refused = post_init(gw.mcp_url, host="gateway.example.com", origin="https://evil.example")
    assert refused.status_code == 403
    assert post_init(gw.mcp_url, host="gateway.example.com", origin="https://gateway.example.com").status_code == 200
    # probes are exempt: kubelets call them by pod IP
    assert httpx2.get(gw.url + "/healthz", headers={"host": "10.1.2.3:8080"}).status_code == 200
    assert httpx2.get(gw.url + "/readyz", headers={"host": "10.1.2.3:8080"}).status_code == 200


async def test_loopback_bind_accepts_only_local_names_by_default(gateway: Gateway) -> None:
    assert post_init(gateway.mcp_url).status_code == 200  # Host: 127.0.0.1:<port>
    assert post_init(gateway.mcp_url, host="attacker.example").status_code == 421
    assert post_init(gateway.mcp_url, origin="http://attacker.example").status_code == 403
    assert post_init(gateway.mcp_url, origin="http://localhost:3000").status_code == 200


async def test_opencode_down_gives_health_false_not_ready_and_a_clear_tool_error(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, {"OPENCODE_BASE_URL": f"http://127.0.0.1:{free_port()}"}).start()
    try:
        health = httpx2.get(gw.url + "/healthz").json()
        assert health["gateway"] == "ok" and health["opencode"]["healthy"] is False
        ready = httpx2.get(gw.url + "/readyz")
        assert ready.status_code == 503
        started = time.monotonic()
        async with mcp_session(gw.mcp_url) as s:
            result = await s.call_tool("run_coding_task", {"prompt": "anything"})
            checked = data(await s.call_tool("health_check", {}))
        assert result.is_error and "unreachable" in error_text(result)
        assert time.monotonic() - started < 15
        assert checked["opencode"]["healthy"] is False
    finally:
        gw.stop()


@pytest.mark.parametrize(
    ("env", "args", "names"),
    [
        ({"PORT": "not-a-port"}, (), "PORT"),
        ({"PORT": "70000"}, (), "PORT"),
        ({"MCP_PATH": "mcp"}, (), "MCP_PATH"),
        ({"OPENCODE_BASE_URL": "ftp://x"}, (), "OPENCODE_BASE_URL"),
        ({"PERMISSION_POLICY": "maybe"}, (), "PERMISSION_POLICY"),
        ({"OPENCODE_API_URL": "http://x/v1", "OPENCODE_MODEL_NAME": "m"}, ("--spawn-opencode",), "OPENCODE_API_KEY"),
        ({"SPAWN_OPENCODE": "true"}, (), "OPENCODE_API_URL"),
        (
            {
                "OPENCODE_API_URL": "http://x/v1",
                "OPENCODE_API_KEY": "k",
                "OPENCODE_MODEL_NAME": "m",
                "OPENCODE_BIN": "/nonexistent/opencode",
            },
            ("--spawn-opencode",),
            "OPENCODE_BIN",
        ),
    ],
)
def test_invalid_configuration_stops_with_one_line_naming_the_variable(
    env: dict[str, str], args: tuple[str, ...], names: str, tmp_path: Path
) -> None:
    proc = run_to_exit(env, tmp_path, *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], proc.stderr


def spawn_env(fake_llm: FakeLLM, port: int, workspace: Path, state: Path, *, api_key: str) -> dict[str, str]:
    """Spawn mode against the fake LLM, with OpenCode on `port`."""
    return {
        "OPENCODE_BASE_URL": f"http://127.0.0.1:{port}",
        "OPENCODE_API_URL": fake_llm.url,  # type: ignore[attr-defined]
        "OPENCODE_API_KEY": api_key,
        "OPENCODE_MODEL_NAME": "spawned-model",
        "WORKSPACE_DIR": str(workspace),
        "OPENCODE_STATE_DIR": str(state),
        "OPENCODE_BIN": opencode_binary(),
    }


async def test_spawn_mode_runs_opencode_and_a_task(tmp_path: Path, fake_llm: FakeLLM) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    env = spawn_env(fake_llm, free_port(), workspace, tmp_path / "state", api_key="sk-spawned-secret")
    gw = Gateway(tmp_path, env, args=("--spawn-opencode",)).start()
    try:
        wait_ready(gw)
        steps = ({"tool": "write", "args": {"filePath": "spawned.txt", "content": "hi\n"}}, {"text": "ok"})
        async with mcp_session(gw.mcp_url) as s:
            done = data(await s.call_tool("run_coding_task", {"prompt": script(*steps)}))
        assert done["status"] == "completed" and done["model"] == "gateway/spawned-model"
        assert (workspace / "spawned.txt").read_text() == "hi\n"
        used = [r for r in fake_llm.requests if r["model"] == "spawned-model"]
        assert used, "the spawned OpenCode must call the configured provider and model"
        # OpenCode is password-protected with a per-start secret: nobody else drives it.
        assert httpx2.get(env["OPENCODE_BASE_URL"] + "/global/health").status_code == 401
    finally:
        code = gw.stop()
    assert code == 0
    assert "sk-spawned-secret" not in gw.logs()
    with pytest.raises(httpx2.HTTPError):
        httpx2.get(env["OPENCODE_BASE_URL"] + "/global/health", timeout=2)


def opencode_child_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, PermissionError):
            continue
        if b"serve" in cmdline and str(port).encode() in cmdline:
            return int(proc.name)
    raise AssertionError(f"no opencode serve child on port {port}")


async def test_spawn_mode_restarts_opencode_and_tasks_report_it(tmp_path: Path, fake_llm: FakeLLM) -> None:
    port = free_port()
    state = tmp_path / "state"
    env = spawn_env(fake_llm, port, tmp_path, state, api_key="sk-never-in-a-file")
    gw = Gateway(tmp_path, env, args=("--spawn-opencode",)).start()
    try:
        wait_ready(gw)
        async with mcp_session(gw.mcp_url) as s:
            started = data(await s.call_tool("run_coding_task_async", {"prompt": script({"text": "x", "hang": 60})}))
            await anyio.sleep(1.5)
            os.kill(opencode_child_pid(port), signal.SIGKILL)
            wait_ready(gw, timeout=30)  # restarted by the supervisor
            final = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 15}))
        assert final["status"] == "failed" and "OpenCode stopped" in final["error"]
        assert "restarting in" in gw.logs()
    finally:
        assert gw.stop() == 0
    leaked = [p for p in state.rglob("*") if p.is_file() and b"sk-never-in-a-file" in p.read_bytes()]
    assert not leaked, leaked
    assert "sk-never-in-a-file" not in gw.logs()


def wait_ready(gw: Gateway, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while httpx2.get(gw.url + "/readyz").status_code != 200:
        assert time.monotonic() < deadline, gw.logs()[-3000:]
        time.sleep(0.1)


async def test_custom_mcp_path(gateways: object) -> None:
    gw = gateways.get(MCP_PATH="/agents/mcp", MCP_BEARER_TOKEN="path-token")  # type: ignore[attr-defined]
    assert gw.mcp_url.endswith("/agents/mcp")
    assert post_init(gw.mcp_url).status_code == 401  # the token guards the custom path
    assert post_init(gw.mcp_url, authorization="Bearer path-token").status_code == 200
    assert post_init(gw.url + "/mcp", authorization="Bearer path-token").status_code == 404
    async with mcp_session(gw.mcp_url, headers={"Authorization": "Bearer path-token"}) as s:
        assert data(await s.call_tool("health_check", {}))["gateway"] == "ok"


async def test_all_interfaces_without_allowed_hosts_accepts_any_host_and_warns(
    tmp_path: Path, opencode: object
) -> None:
    env = {"OPENCODE_BASE_URL": opencode.url, "HOST": "0.0.0.0", "MCP_BEARER_TOKEN": "any-host"}  # type: ignore[attr-defined]
    gw = Gateway(tmp_path, env).start()
    auth = {"authorization": "Bearer any-host"}
    try:
        assert post_init(gw.mcp_url, host="gateway.internal:8080", **auth).status_code == 200
        # An Origin naming the request's own host is what DNS rebinding produces: refused.
        assert post_init(gw.mcp_url, host="10.1.2.3", origin="http://10.1.2.3", **auth).status_code == 403
        assert post_init(gw.mcp_url, host="10.1.2.3", origin="https://evil.example", **auth).status_code == 403
    finally:
        gw.stop()
    assert "without ALLOWED_HOSTS: any Host header is accepted" in gw.logs()


async def test_password_protected_opencode(tmp_path: Path, fake_llm: FakeLLM) -> None:
    server = OpenCodeServer(tmp_path / "oc", fake_llm.url)  # type: ignore[attr-defined]
    server.env.update({"OPENCODE_SERVER_PASSWORD": "oc-pass", "OPENCODE_SERVER_USERNAME": "gw"})
    server.start(health_auth=("gw", "oc-pass"))
    good = Gateway(
        tmp_path / "good", {"OPENCODE_BASE_URL": server.url, "OPENCODE_USERNAME": "gw", "OPENCODE_PASSWORD": "oc-pass"}
    ).start()
    bad = Gateway(
        tmp_path / "bad",
        {"OPENCODE_BASE_URL": server.url, "OPENCODE_USERNAME": "gw", "OPENCODE_PASSWORD": "bad-pass-7f3"},
    ).start()
    try:
        assert httpx2.get(good.url + "/readyz").status_code == 200
        async with mcp_session(good.mcp_url) as s:
            done = data(await s.call_tool("run_coding_task", {"prompt": script({"text": "authorized"})}))
        assert done["status"] == "completed" and done["result"] == "authorized"
        assert httpx2.get(bad.url + "/readyz").status_code == 503
        async with mcp_session(bad.mcp_url) as s:
            refused = await s.call_tool("list_agents", {})
        assert refused.is_error and "OPENCODE_PASSWORD" in error_text(refused)
        assert "oc-pass" not in good.logs() and "bad-pass-7f3" not in error_text(refused) + bad.logs()
    finally:
        good.stop()
        bad.stop()
        server.stop()
