"""The chart's pod shape with the real image: a podman pod of two containers, the gateway
(`--no-spawn-opencode`, every secret, the git credentials mounted) and OpenCode (`opencode`,
none of them), sharing the network and a workspace volume but not mounts or processes. A
scripted agent looks for the credentials the way it could in one container and finds
nothing, while its repository task is cloned, committed and pushed. Run by `make image-test`."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.image.test_image import IMAGE, LIMITS, PODMAN, TOKEN, llm, podman  # noqa: F401 (fixture)
from tests.support.client import data, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.git_server import GitServer
from tests.support.procs import free_port

pytestmark = [pytest.mark.anyio]
GIT_PASSWORD = "pod-git-" + uuid.uuid4().hex
MOUNTED = "/etc/opencode-gateway/git/credentials"  # where the chart mounts it, in the gateway only


def bash(command: str) -> dict[str, object]:
    return {"tool": "bash", "args": {"command": command, "description": command[:40]}}


def outputs(page: dict[str, Any]) -> list[str]:
    """What each of the agent's tool calls printed, in order."""
    return [str(call.get("output")) for message in page["messages"] for call in message.get("tool_calls", [])]


def wait_ready(url: str, pod: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.5)
    logs = subprocess.run([*PODMAN, "pod", "logs", pod], capture_output=True, text=True)
    raise AssertionError(f"pod not ready in {timeout}s:\n{(logs.stdout + logs.stderr)[-3000:]}")


def shared_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    os.chmod(path, 0o777)  # the containers' UID differs from ours
    return path


async def test_a_pod_of_two_containers_keeps_the_credentials_from_the_agent(tmp_path: Path, llm: FakeLLM) -> None:  # noqa: F811
    server = GitServer(tmp_path / "served", "alice", GIT_PASSWORD).start()
    server.create("proj", {"app.py": "print('hello')\n"})
    secrets_dir = shared_dir(tmp_path / "git-secret")
    (secrets_dir / "credentials").write_text(server.url.replace("://", f"://alice:{GIT_PASSWORD}@") + "\n")
    os.chmod(secrets_dir / "credentials", 0o444)
    workspace = shared_dir(tmp_path / "workspace")
    pod = f"ocgw-pod-{uuid.uuid4().hex[:8]}"
    port, opencode_port, proxy_port = free_port(), free_port(), free_port()
    link = {
        "LLM_PROXY_PORT": str(proxy_port),
        "LLM_PROXY_TOKEN": "pod-proxy-" + uuid.uuid4().hex,
        "OPENCODE_PASSWORD": "pod-pw-" + uuid.uuid4().hex,
        "OPENCODE_BASE_URL": f"http://127.0.0.1:{opencode_port}",
    }
    opencode_env = {**link, "OPENCODE_MODEL_NAME": "image-model", "PERMISSION_POLICY": "allow"}
    gateway_env = {
        **link,
        "PORT": str(port),
        "OPENCODE_API_URL": llm.url,  # type: ignore[attr-defined]
        "OPENCODE_API_KEY": "sk-image-test",
        "MCP_BEARER_TOKEN": TOKEN,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REPOSITORY_ALLOWLIST": f"{server.url}/",
        "GIT_CREDENTIALS_FILE": MOUNTED,
    }

    def run(name: str, env: dict[str, str], *args: str, mounts: tuple[str, ...] = ()) -> None:
        flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        volumes = [arg for mount in (f"{workspace}:/workspace", *mounts) for arg in ("-v", mount)]
        podman(
            "run", "-d", "--pod", pod, "--name", f"{pod}-{name}", "--network", "host",
            *LIMITS, *flags, *volumes, IMAGE, *args,
        )  # fmt: skip

    # Host networking as the other image tests (the fake LLM and git server are on the host's
    # loopback): both containers share it, as a Kubernetes pod's share its network, and neither
    # PID nor mount namespaces. No infra container: here it cannot set its own rlimits (see
    # containers.md), and with the host's network there is no namespace for it to hold.
    podman("pod", "create", "--name", pod, "--infra=false")
    try:
        run("gateway", gateway_env, "--no-spawn-opencode", mounts=(f"{secrets_dir}:/etc/opencode-gateway/git:ro",))
        run("opencode", opencode_env, "opencode")
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, pod)
        hunt = (
            bash(f"cat {MOUNTED}; echo cat-exit=$?"),
            # Every process it can see, by environment and command line ([S], [n]: so that the
            # pattern does not find the grep and the shell that carry it).
            bash(
                "grep -l -a -s -e 'GIT_CREDENTIAL[S]' -e 'no-spaw[n]' /proc/[0-9]*/environ /proc/[0-9]*/cmdline; true"
            ),
            {"tool": "write", "args": {"filePath": "pod.txt", "content": "from the pod\n"}},
            {"text": "done"},
        )
        async with mcp_session(url + "/mcp", headers={"Authorization": f"Bearer {TOKEN}"}) as s:
            args = {
                "prompt": script(*hunt),
                "repository": f"{server.url}/proj.git",
                "push": True,
                "timeout_seconds": 120,
            }
            done = data(await s.call_tool("run_coding_task", args))
            page = data(await s.call_tool("get_task_messages", {"task_id": done["task_id"]}))
        read, found = outputs(page)[:2]
        assert "No such file or directory" in read and "cat-exit=1" in read, read  # not in its container
        assert "/proc/" not in found, found  # no process of the gateway's is visible to it
        assert GIT_PASSWORD not in json.dumps(page) and "sk-image-test" not in json.dumps(page)
        assert done["status"] == "completed" and done["workspace"]["pushed"] is True, done
        assert server.branch("proj", done["workspace"]["branch"]) == done["workspace"]["head_commit"]
        podman("pod", "stop", "-t", "20", pod)
        for name in ("gateway", "opencode"):
            state = json.loads(podman("inspect", f"{pod}-{name}"))[0]["State"]
            logs = subprocess.run([*PODMAN, "logs", f"{pod}-{name}"], capture_output=True, text=True)
            assert state["ExitCode"] == 0, logs.stdout[-3000:] + logs.stderr[-3000:]
            assert GIT_PASSWORD not in logs.stdout + logs.stderr
    finally:
        subprocess.run([*PODMAN, "pod", "rm", "-f", pod], capture_output=True)
        server.stop()
