"""Sandboxes (issue 19), tried as an attacker would, with the real `local` runtime (bubblewrap)
and the real `opencode serve`: one caller's agent (bob's), told exactly where the other's
work is, tries to read, list and write it, to find her prompt through every OpenCode port it
can reach, with every server password it can collect from /proc/*/environ, and to read the
API keys file and the git credentials. All of it fails while every task completes.

OCGW_TEST_SANDBOX=off runs the very same attacks against one shared OpenCode (the gateway
as before sandboxes): the isolation tests must then fail, which shows they can.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.e2e.test_http import wait_ready
from tests.support.client import data, error_text, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.git_server import GitServer
from tests.support.procs import Gateway, free_port, git_repo, opencode_binary, run_to_exit

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

OFF = os.environ.get("OCGW_TEST_SANDBOX") == "off"
KEYS = {"alice": "alice-key-" + uuid.uuid4().hex, "bob": "bob-key-" + uuid.uuid4().hex}
GIT_PASSWORD = "git-secret-" + uuid.uuid4().hex
WAIT = 180


class World:
    """What the gateways share: callers, a WORKSPACE_ROOT with alice's repository, a git server."""

    def __init__(self, llm: FakeLLM) -> None:
        # Short: a local sandbox's Unix socket path lives under OPENCODE_STATE_DIR.
        self.root = Path(tempfile.mkdtemp(prefix="ocgw-sb-", dir="/tmp"))
        self.llm = llm
        self.keys = self.root / "api-keys"
        self.keys.write_text("".join(f"{name} {key}\n" for name, key in KEYS.items()))
        self.workspace_root = self.root / "ws"
        git_repo(self.workspace_root / "alice")
        self.git = GitServer(self.root / "served", "alice", GIT_PASSWORD).start()
        self.git.create("proj", {"app.py": "print('hello')\n"})
        self.credentials = self.root / "git-credentials"
        self.credentials.write_text(self.git.url.replace("://", "://alice:" + GIT_PASSWORD + "@") + "\n")

    def gateway(self, name: str, **extra: str) -> Gateway:
        env = {
            "OPENCODE_API_URL": self.llm.url,  # type: ignore[attr-defined]
            "OPENCODE_API_KEY": "sk-provider-" + uuid.uuid4().hex,
            "OPENCODE_MODEL_NAME": "sandboxed-model",
            "OPENCODE_BIN": opencode_binary(),
            "OPENCODE_STATE_DIR": str(self.root / name),
            "OPENCODE_BASE_URL": f"http://127.0.0.1:{free_port()}",  # the shared OpenCode of SANDBOX=off
            "MCP_API_KEYS_FILE": str(self.keys),
            "WORKSPACE_ROOT": str(self.workspace_root),
            "REPOSITORY_ALLOWLIST": f"{self.git.url}/",
            "GIT_CREDENTIALS_FILE": str(self.credentials),
            **extra,
        }
        if OFF:
            env["SANDBOX"] = "off"
        gateway = Gateway(self.root / f"gw-{name}", env, args=("--spawn-opencode",)).start(timeout=60)
        wait_ready(gateway)  # SANDBOX=off: the shared OpenCode is up
        return gateway

    def stop(self) -> None:
        self.git.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def world(fake_llm: FakeLLM) -> Iterator[World]:
    shared = World(fake_llm)
    yield shared
    shared.stop()


@pytest.fixture(scope="module")
def per_caller(world: World) -> Iterator[Gateway]:
    gateway = world.gateway("caller")  # SANDBOX unset: spawn mode with API keys means `caller`
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def per_task(world: World) -> Iterator[Gateway]:
    gateway = world.gateway("task", SANDBOX="task", SANDBOX_IDLE_SECONDS="3")
    yield gateway
    gateway.stop()


async def run(gateway: Gateway, caller: str, **args: Any) -> dict[str, Any]:
    async with mcp_session(gateway.mcp_url, headers={"Authorization": f"Bearer {KEYS[caller]}"}) as s:
        return data(await s.call_tool("run_coding_task", {"timeout_seconds": WAIT, **args}))


async def call(gateway: Gateway, caller: str, tool: str, **args: Any) -> Any:
    async with mcp_session(gateway.mcp_url, headers={"Authorization": f"Bearer {KEYS[caller]}"}) as s:
        return await s.call_tool(tool, args)


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "args": {"command": command, "description": "look around"}}


def probe(target: str, notes: str, world: World) -> str:
    """Everything bob's agent tries against `target` (another task's directory). The marker is
    assembled at run time, so the command's own text (stored in bob's session) never matches."""
    head, tail = notes[:6], notes[6:]
    return f"""
exec 2>&1
W='{target}'; M="{head}""{tail}"
echo "== read"; cat "$W/notes.txt" 2>&1
echo "== list"; ls -la "$W" 2>&1
echo "== write"; echo bob > "$W/bob-was-here.txt" 2>&1 && echo "WROTE-INTO-IT"
echo "== grep"; grep -rl "$M" '{world.root}' /tmp 2>/dev/null | head -5
echo "== keys"; cat '{world.keys}' 2>&1; cat '{world.credentials}' 2>&1
PW=$(cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep '^OPENCODE_SERVER_PASSWORD=' | cut -d= -f2- | sort -u)
echo "== passwords: $(echo "$PW" | grep -c .)"
PORTS=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4=="0A" {{split($2,a,":"); print a[2]}}' | sort -u)
echo "== ports: $(echo $PORTS | wc -w)"
for h in $PORTS; do for pw in none $PW; do
  curl -s -m 3 -u "opencode:$pw" "http://127.0.0.1:$((16#$h))/experimental/session?roots=true"
done; done | grep -o "PLAN-[0-9a-f]*" | sort -u | sed 's/^/== seen /'
echo "== end"
"""


async def bash_output(gateway: Gateway, caller: str, task_id: str, *, end: str = "== end") -> str:
    messages = data(await call(gateway, caller, "get_task_messages", task_id=task_id))
    outputs = [
        str(part.get("output") or "")
        for message in messages["messages"]
        for part in message.get("tool_calls", [])
        if part.get("tool") == "bash"
    ]
    assert outputs and end in outputs[-1], messages  # the probe ran to its end
    return outputs[-1]


def assert_nothing_reached(output: str, target: str, plan: str, notes: str) -> None:
    assert notes not in output, output  # not read
    assert "notes.txt" not in output.split("== write")[0].split("== list")[1], output  # not listed
    assert "WROTE-INTO-IT" not in output and not Path(target, "bob-was-here.txt").exists(), output  # not written
    assert not output.split("== grep")[1].split("== keys")[0].strip(), output  # not found on disk
    assert not any(key in output for key in KEYS.values()) and GIT_PASSWORD not in output, output
    assert plan not in output, output  # her prompt, through no port with no password


async def alice_writes_notes(gateway: Gateway, say: str, **args: Any) -> tuple[dict[str, Any], str, str]:
    """Alice's task: a private plan in its prompt (`say` + the plan), a file of notes in its
    directory. Returns the task's result, the plan and the notes."""
    plan, notes = f"PLAN-{uuid.uuid4().hex}", f"NOTES{uuid.uuid4().hex}"
    steps = ({"tool": "write", "args": {"filePath": "notes.txt", "content": notes + "\n"}}, {"text": "noted"})
    return await run(gateway, "alice", prompt=script(*steps, say=f"{say} {plan}"), **args), plan, notes


async def test_one_callers_agent_cannot_reach_anothers_work(per_caller: Gateway, world: World) -> None:
    alice, plan, notes = await alice_writes_notes(per_caller, "My private plan", directory="alice", isolate=True)
    assert alice["status"] == "completed", alice
    worktree = alice["workspace"]["directory"]
    assert Path(worktree, "notes.txt").read_text().strip() == notes
    bob = await run(per_caller, "bob", prompt=script(bash(probe(worktree, notes, world)), {"text": "looked"}))
    assert bob["status"] == "completed", bob
    output = await bash_output(per_caller, "bob", bob["task_id"])
    assert_nothing_reached(output, worktree, plan, notes)
    assert "== passwords: 1" in output or "== passwords: 0" in output, output  # at most its own

    listed = data(await call(per_caller, "alice", "list_tasks"))["tasks"]
    assert alice["task_id"] in [t["task_id"] for t in listed]  # her tasks are listed from her sandbox
    assert not [t for t in data(await call(per_caller, "bob", "list_tasks"))["tasks"] if "PLAN" in str(t)]

    # Her task id, used by bob, reads as a task that does not exist (and wakes nothing).
    theirs = await call(per_caller, "bob", "get_task_status", task_id=alice["task_id"])
    made_up = re.sub(r"ses_[A-Za-z0-9]+", "ses_" + "Z" * 26, alice["task_id"])
    invented = await call(per_caller, "bob", "get_task_status", task_id=made_up)
    assert theirs.is_error and invented.is_error
    assert error_text(theirs).replace(alice["session_id"], "ses_" + "Z" * 26) == error_text(invented)
    if not OFF:  # the task id names the sandbox; the log names it, never the caller's name
        sandbox = alice["task_id"].split(":")[0]
        assert re.fullmatch(r"c-[0-9a-f]{24}", sandbox) and "alice" not in sandbox
        assert f"sandbox {sandbox}: ready" in per_caller.logs()
        metrics = httpx2.get(per_caller.url + "/metrics").text
        assert re.search(r'^ocgw_sandboxes\{state="running"\} [1-9]', metrics, flags=re.MULTILINE), metrics
        assert re.search(r"^ocgw_sandbox_start_seconds_count [1-9]", metrics, flags=re.MULTILINE), metrics


async def test_a_repository_task_pushes_while_its_agent_finds_no_credential(per_caller: Gateway, world: World) -> None:
    split = f'"{GIT_PASSWORD[:8]}""{GIT_PASSWORD[8:]}"'
    look = f"""
exec 2>&1
echo "== env"; env | grep -i -e git -e token -e pass -e key | sed 's/=.*$/=(set)/'
echo "== creds"; cat '{world.credentials}' ~/.git-credentials ~/.gitconfig 2>&1 | grep -c {split}
echo "== anywhere"; grep -rl {split} '{world.root}' /tmp $HOME 2>/dev/null | head -3
echo "== config"; git config --list --show-origin 2>&1 | grep -i -e credential -e url | head -5
echo "== plant"; touch "$(git rev-parse --path-format=absolute --git-common-dir)/planted" && echo PLANTED-IN-CLONE
echo "== push"; git push '{world.git.url}/proj.git' HEAD:refs/heads/agent-pushed 2>&1 | tail -1
echo "== end"
"""
    done = await run(
        per_caller,
        "alice",
        prompt=script(
            bash(look), {"tool": "write", "args": {"filePath": "done.txt", "content": "done\n"}}, {"text": "ok"}
        ),
        repository=f"{world.git.url}/proj.git",
        push=True,
    )
    assert done["status"] == "completed", done
    workspace = done["workspace"]
    assert workspace["pushed"] is True and workspace["push_error"] is None, workspace
    assert world.git.branch("proj", workspace["branch"]) == workspace["head_commit"]  # clone, commit, push worked
    output = await bash_output(per_caller, "alice", done["task_id"])
    assert GIT_PASSWORD not in output, output
    assert output.split("== creds")[1].split("== anywhere")[0].strip() == "0", output
    assert not output.split("== anywhere")[1].split("== config")[0].strip(), output
    assert world.git.branch("proj", "agent-pushed") is None, output  # the agent cannot push by itself
    planting = output.split("== plant")[1].split("== push")[0]
    assert "PLANTED-IN-CLONE" not in planting and "repos/" in planting, output  # nor change the gateway's clone


async def test_two_tasks_of_one_caller_and_a_follow_up_after_idle(per_task: Gateway, world: World) -> None:
    first, plan, notes = await alice_writes_notes(per_task, "First task")
    assert first["status"] == "completed", first
    target = first["directory"]
    second = await run(per_task, "alice", prompt=script(bash(probe(target, notes, world)), {"text": "looked"}))
    assert second["status"] == "completed", second
    assert_nothing_reached(await bash_output(per_task, "alice", second["task_id"]), target, plan, notes)
    if OFF:
        return
    sandbox = first["task_id"].split(":")[0]
    assert re.fullmatch(r"t-[0-9a-f]{26}", sandbox) and second["task_id"].split(":")[0] != sandbox

    with anyio.fail_after(60):  # SANDBOX_IDLE_SECONDS=3: the first task's sandbox stops
        while f"sandbox {sandbox}: stopping idle" not in per_task.logs():
            await anyio.sleep(0.5)
    started = per_task.logs().count(f"sandbox {sandbox}: starting")
    # Listed as it was when its sandbox stopped, without starting it; never to bob.
    listed = data(await call(per_task, "alice", "list_tasks"))["tasks"]
    assert {"task_id": first["task_id"], "status": "completed"}.items() <= next(
        (t for t in listed if t["task_id"] == first["task_id"]), {}
    ).items(), listed
    assert not [t for t in data(await call(per_task, "bob", "list_tasks"))["tasks"] if t["task_id"].startswith(sandbox)]
    assert per_task.logs().count(f"sandbox {sandbox}: starting") == started
    again = await run(
        per_task,
        "alice",
        prompt=script(bash("cat notes.txt"), {"text": "read it back"}),
        task_id=first["task_id"],
    )
    assert again["status"] == "completed" and again["task_id"].startswith(sandbox + ":"), again
    assert notes in await bash_output(per_task, "alice", again["task_id"], end=notes)
    assert per_task.logs().count(f"sandbox {sandbox}: starting") == started + 1  # woken for it


def test_start_up_refuses_a_runtime_that_cannot_work(tmp_path: Path, world: World) -> None:
    base = {
        "OPENCODE_API_URL": "http://127.0.0.1:9/v1",
        "OPENCODE_API_KEY": "sk-x",
        "OPENCODE_MODEL_NAME": "m",
        "OPENCODE_BIN": opencode_binary(),
        "OPENCODE_STATE_DIR": str(tmp_path / "state"),
        "MCP_API_KEYS_FILE": str(world.keys),
        "HOST": "127.0.0.1",
    }
    no_bwrap = run_to_exit({**base, "PATH": str(tmp_path)}, tmp_path, "--spawn-opencode")
    (line,) = no_bwrap.stderr.strip().splitlines()
    assert no_bwrap.returncode == 2 and "SANDBOX=caller" in line and "bubblewrap" in line and "SANDBOX=off" in line
    kube = run_to_exit({**base, "SANDBOX_RUNTIME": "kubernetes"}, tmp_path, "--spawn-opencode")
    (line,) = kube.stderr.strip().splitlines()
    assert kube.returncode == 2 and "SANDBOX_RUNTIME=kubernetes" in line and "SANDBOX=off" in line


def test_a_gateway_on_an_opencode_it_does_not_run_says_callers_share_it(tmp_path: Path, world: World) -> None:
    env = {"OPENCODE_BASE_URL": f"http://127.0.0.1:{free_port()}", "MCP_API_KEYS_FILE": str(world.keys)}
    gateway = Gateway(tmp_path, env).start()
    try:
        deadline = time.monotonic() + 10
        while "callers share the OpenCode" not in gateway.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        gateway.stop()
    assert "callers share the OpenCode" in gateway.logs() and "SANDBOX=off" in gateway.logs()


async def test_a_task_in_a_sandbox_sends_its_webhooks(world: World) -> None:
    """Issue 21 with sandboxes: a sandbox's tasks are watched while it runs, so their events go
    out like any other task's (deployment-wide endpoint and the caller's notify_url)."""
    import base64
    import functools
    import secrets

    from standardwebhooks import Webhook

    from tests.support.webhook_receiver import WebhookReceiver

    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    receiver = WebhookReceiver().start()
    gateway = world.gateway(
        "hooks", WEBHOOK_URL=receiver.url + "/platform", WEBHOOK_URL_ALLOWLIST=receiver.url + "/", WEBHOOK_SECRET=secret
    )
    try:
        done = await run(gateway, "alice", prompt=script({"text": "done"}), notify_url=receiver.url + "/alice")
        assert done["status"] == "completed", done
        for path in ("/platform", "/alice"):
            (delivery,) = await anyio.to_thread.run_sync(functools.partial(receiver.wait_for, 1, path, 60))
            body = Webhook(secret).verify(delivery.body, delivery.headers)
            assert body["type"] == "task.completed" and body["data"]["task_id"] == done["task_id"], body
    finally:
        gateway.stop()
        receiver.stop()
