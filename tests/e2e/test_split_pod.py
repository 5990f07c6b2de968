"""The chart's pod on loopback: the gateway and OpenCode as two processes, started the way
its two containers are (`opencode-mcp-gateway --no-spawn-opencode` and `opencode-mcp-gateway
opencode`), each with only its container's environment. The gateway holds the provider's
key and the git credentials; OpenCode gets neither, nor any path to them, and reaches the
model through the gateway's LLM proxy. A scripted agent goes looking for the credentials
and tries to push by itself, while the task still clones, commits and pushes. It also plants
programs for the gateway's own git to run (filter and diff drivers in the cached clone's config,
which is on the volume it works on): none of them ever runs.

What the container boundary adds on top (a mount namespace: the credentials file is not in
the OpenCode container at all; a PID namespace: the gateway's /proc is not visible) cannot
be simulated with processes; tests/chart shows the manifests that set those up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.test_security import read_environ
from tests.support.client import data, error_text, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.git_server import GitServer, git
from tests.support.procs import Gateway, free_port, opencode_binary, stop_process, wait_for_line

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

GIT_PASSWORD = "git-tok-" + uuid.uuid4().hex
API_KEY = "sk-provider-" + uuid.uuid4().hex
BEARER = "bearer-" + uuid.uuid4().hex
# Shared by the two containers (the chart's Secret): neither opens anything beyond this pod.
OPENCODE_PASSWORD = "oc-pw-" + uuid.uuid4().hex
PROXY_TOKEN = "proxy-" + uuid.uuid4().hex


class OpenCodeContainer:
    """`opencode-mcp-gateway opencode` with the OpenCode container's environment only."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.log_path = root / "opencode-container.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        script_ = Path(sys.executable).with_name("opencode-mcp-gateway")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(script_), "opencode"], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.env["HOME"]
            )
        wait_for_line(self.proc, self.log_path, b"opencode serve is ready", 60, what="the OpenCode container")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def bash(command: str, description: str) -> dict[str, Any]:
    return {"tool": "bash", "args": {"command": command, "description": description}}


def plant_drivers(marker: Path) -> dict[str, Any]:
    """A bash call that makes every file of the worktree go through a filter and a diff driver
    of the agent's, defined in the cached clone's config: were the gateway's git to run one, a
    program of the agent's would run in the gateway's container, beside the credentials, and
    leave `marker` (holding its environment)."""
    grab = f"env >> {marker}"
    command = (
        "c=$(git rev-parse --path-format=absolute --git-common-dir) && "
        f'git config -f "$c/config" filter.grab.clean "sh -c \'{grab}; cat\'" && '
        f'git config -f "$c/config" diff.grab.textconv "sh -c \'{grab}; cat \\"\\$0\\"\'" && '
        f'git config -f "$c/config" diff.external "sh -c \'{grab}\'" && '
        "printf '* filter=grab diff=grab\\n' > .gitattributes && git config --list | grep grab && echo planted"
    )
    return bash(command, "plant drivers")


def readyz(gw: Gateway) -> httpx2.Response:
    return httpx2.get(gw.url + "/readyz", timeout=10)


class Pod:
    """The two processes as the pod's two containers would run them, a git server with
    credentials, and the fake provider that wants the real key."""

    def __init__(self, root: Path) -> None:
        self.llm = FakeLLM(require_key=API_KEY)  # the provider still gets the real key, through the gateway
        llm_url = self.llm.start()
        self.server = GitServer(root / "served", "alice", GIT_PASSWORD).start()
        self.server.create("proj", {"app.py": "print('hello')\n"})
        self.repository = f"{self.server.url}/proj.git"
        # Only the gateway is told where this is (in the pod: a Secret mounted in its container only).
        self.gateway_only = root / "gateway-only"
        self.gateway_only.mkdir()
        self.credentials = self.gateway_only / "git-credentials"
        self.credentials.write_text(self.server.url.replace("://", f"://alice:{GIT_PASSWORD}@") + "\n")
        self.credentials.chmod(0o400)
        self.volume = root / "data"  # the pod's shared volume, at the same path in both containers
        (self.volume / "workspace").mkdir(parents=True)
        (self.volume / "home").mkdir()
        opencode_url = f"http://127.0.0.1:{free_port()}"
        pod_env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "LLM_PROXY_PORT": str(free_port())}
        pod_env.update(LLM_PROXY_TOKEN=PROXY_TOKEN, OPENCODE_PASSWORD=OPENCODE_PASSWORD)
        gateway_env = {
            **pod_env,
            "OPENCODE_BASE_URL": opencode_url,
            "OPENCODE_API_URL": llm_url,
            "OPENCODE_API_KEY": API_KEY,
            "MCP_BEARER_TOKEN": BEARER,
            "REPOSITORY_ALLOWLIST": f"{self.server.url}/",
            "GIT_CREDENTIALS_FILE": str(self.credentials),
            "WORKSPACE_DIR": str(self.volume / "workspace"),
            "HOME": str(root / "gateway"),
        }
        self.gw = Gateway(root / "gateway", gateway_env, args=("--no-spawn-opencode",))
        self.gw.env = dict(self.gw.env, SPAWN_OPENCODE="true")  # as the image sets it: the flag wins
        opencode_env = {
            **pod_env,
            "OPENCODE_BASE_URL": opencode_url,
            "OPENCODE_MODEL_NAME": "split-model",
            "OPENCODE_BIN": opencode_binary(),
            "WORKSPACE_DIR": str(self.volume / "workspace"),
            "OPENCODE_STATE_DIR": str(self.volume / "opencode"),
            "HOME": str(self.volume / "home"),
            "PERMISSION_POLICY": "allow",
        }
        self.opencode = OpenCodeContainer(root, opencode_env)
        self.before_opencode: httpx2.Response | None = None

    def start(self) -> Pod:
        """The gateway first, OpenCode later: the containers start in any order."""
        self.gw.start()
        self.before_opencode = readyz(self.gw)
        self.opencode.start()
        deadline = time.monotonic() + 30
        while readyz(self.gw).status_code != 200:
            assert time.monotonic() < deadline, self.gw.logs()[-3000:]
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        stop_process(self.opencode.proc, timeout=20)
        self.gw.stop()
        self.llm.stop()
        self.server.stop()

    async def run(self, *steps: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """A repository task with `push`: its result, its messages, and its diff."""
        async with mcp_session(self.gw.mcp_url, headers={"Authorization": f"Bearer {BEARER}"}) as s:
            args = {"prompt": script(*steps), "repository": self.repository, "push": True}
            done = data(await s.call_tool("run_coding_task", args))
            page = data(await s.call_tool("get_task_messages", {"task_id": done["task_id"], "limit": 1000}))
            diff = data(await s.call_tool("get_task_diff", {"task_id": done["task_id"]}))
        return done, page, diff


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    started = Pod(tmp_path_factory.mktemp("pod")).start()
    yield started
    started.stop()
    opencode = started.opencode
    assert opencode.proc is not None and opencode.proc.returncode == 0, opencode.logs()[-2000:]
    for log in (started.gw.logs(), opencode.logs()):
        assert GIT_PASSWORD not in log and API_KEY not in log and PROXY_TOKEN not in log


async def test_the_agent_finds_no_credentials_and_the_task_still_pushes(pod: Pod) -> None:
    # Without its OpenCode the gateway was not ready (so the Service sends it nothing), and it
    # became ready once OpenCode was.
    assert pod.before_opencode is not None and pod.before_opencode.status_code == 503
    assert "unreachable" in pod.before_opencode.text, pod.before_opencode.text
    half, volume = GIT_PASSWORD[:10], pod.volume
    hunt = (
        bash("env | sort", "own env"),
        read_environ(1),  # opencode serve
        read_environ(2),  # `opencode-mcp-gateway opencode`, the container's main process
        # Split in quotes, so that the prompt itself never holds what is searched for.
        bash(f'grep -rlI -e "ali""ce:" -e "{half}""{GIT_PASSWORD[len(half) :]}" {volume}; echo grep-exit=$?', "scan"),
        bash("git config --list --show-origin; git remote -v", "git config"),
        bash(
            f"GIT_TERMINAL_PROMPT=0 git push {pod.repository} HEAD:refs/heads/agent-own-push 2>&1; echo push-exit=$?",
            "push",
        ),
        plant_drivers(volume / "ran-in-the-gateway"),
        {"tool": "write", "args": {"filePath": "found.txt", "content": "nothing\n"}},
        {"text": "searched"},
    )
    done, page, diff = await pod.run(*hunt)
    seen = json.dumps(page)
    # What the agent saw: its environment and its ancestors' were read...
    assert seen.count("OPENCODE_SERVER_PASSWORD=") == 2 and "opencode-mcp-gateway opencode" in seen, seen
    assert "grep-exit=1" in seen, seen  # grep read the whole shared volume and matched nothing
    assert "push-exit=128" in seen and "terminal prompts disabled" in seen, seen
    # ...and hold neither a secret nor the way to one.
    for secret in (GIT_PASSWORD, API_KEY, BEARER, str(pod.credentials), str(pod.gateway_only), "GIT_CREDENTIALS_FILE"):
        assert secret not in seen, f"the agent saw {secret!r}"
    assert "alice:" not in seen  # no credential line was found
    assert pod.server.branch("proj", "agent-own-push") is None, "the agent pushed by itself"
    # Meanwhile the gateway cloned, committed and pushed the task's work with the credentials.
    assert done["status"] == "completed" and done["result"] == "searched", done
    ws = done["workspace"]
    assert ws["pushed"] is True and ws["head_commit"] != ws["base_commit"], ws
    assert pod.server.branch("proj", ws["branch"]) == ws["head_commit"]
    assert Path(ws["directory"]).is_relative_to(volume / "workspace")  # on the shared volume
    # The programs it planted were in place (the gateway committed its attributes file) and
    # none ran, neither when the gateway committed nor when it diffed.
    assert "planted" in seen, seen
    assert {f["path"] for f in diff["files"]} == {".gitattributes", "found.txt"}, diff
    marker = volume / "ran-in-the-gateway"
    assert not marker.exists(), marker.read_text()[:3000]


async def test_a_worktree_swapped_for_a_link_is_neither_committed_nor_pushed(pod: Pod) -> None:
    """The agent replaces its worktree with a link to where the credentials are mounted (in
    the pod the gateway's container resolves it, the agent's does not): were the gateway to
    commit "its" worktree, it would commit and push the credentials file."""
    swap = f'w=$PWD; cd .. && rm -rf "$w" && ln -s {pod.gateway_only} "$w" && echo swapped'
    heads_before = git("ls-remote", "--heads", str(pod.server.root / "proj.git"))
    async with mcp_session(pod.gw.mcp_url, headers={"Authorization": f"Bearer {BEARER}"}) as s:
        args = {"prompt": script(bash(swap, "swap the worktree"), {"text": "swapped"}), "push": True}
        answer = await s.call_tool("run_coding_task", {**args, "repository": pod.repository})
    assert answer.is_error and "no longer a directory of WORKSPACES_DIR (a link?)" in error_text(answer)
    assert git("ls-remote", "--heads", str(pod.server.root / "proj.git")) == heads_before, "nothing was pushed"
    (cache,) = (pod.volume / "workspace" / ".opencode-workspaces" / "repos").glob("*.git")
    stored = subprocess.run(["git", "--git-dir", str(cache), "log", "--all", "-p"], capture_output=True, text=True)
    assert stored.returncode == 0 and "app.py" in stored.stdout
    assert GIT_PASSWORD not in stored.stdout, "the credentials were committed"
