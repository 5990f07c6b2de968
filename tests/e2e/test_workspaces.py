"""Repository workspaces end to end: the real `opencode serve`, the gateway as users run it,
and a real git server (git http-backend behind basic auth) on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.support.client import data, error_text, mcp_session, script
from tests.support.git_server import GitServer, SilentServer, git
from tests.support.procs import Gateway, free_port, git_repo

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

PASSWORD = "tok-" + uuid.uuid4().hex  # the credential that must never show up anywhere
WRONG = "wrong-" + uuid.uuid4().hex
AUTHOR = "Review Bot <review-bot@example.com>"


class Setup:
    def __init__(self, root: Path) -> None:
        self.server = GitServer(root / "served", "alice", PASSWORD).start()
        self.other = GitServer(root / "served-other", "bob", "not-" + PASSWORD).start()  # our entry for it is wrong
        self.silent = SilentServer()
        self.first = self.server.create("proj", {"app.py": "print('hello')\n"}, tag="v1")
        self.other.create("locked", {"x.txt": "x\n"})
        big = self.server.root.parent / "big-grow"
        self.server.create("big", {"small.txt": "s\n"})
        git("clone", "-q", str(self.server.root / "big.git"), str(big))
        (big / "blob.bin").write_bytes(os.urandom(3 * 2**20))
        git("add", ".", cwd=big)
        git("commit", "-qm", "big", cwd=big)
        git("push", "-q", "origin", "HEAD:main", cwd=big)
        self.credentials = root / "git-credentials"
        self.credentials.write_text(
            f"{self.server.url.replace('://', '://alice:' + PASSWORD + '@')}\n"
            f"{self.other.url.replace('://', '://bob:' + WRONG + '@')}\n"
        )
        self.credentials.chmod(0o400)
        self.before = self.credentials.read_text()
        self.workspaces = root / "workspaces"
        self.closed = f"http://127.0.0.1:{free_port()}"

    def env(self, **extra: str) -> dict[str, str]:
        allow = [f"{self.server.url}/", f"{self.other.url}/", f"{self.silent.url}/", f"{self.closed}/"]
        return {
            "REPOSITORY_ALLOWLIST": ",".join(allow),
            "GIT_CREDENTIALS_FILE": str(self.credentials),
            "GIT_COMMIT_AUTHOR": AUTHOR,
            "WORKSPACES_DIR": str(self.workspaces),
            "REPOSITORY_FETCH_TIMEOUT_SECONDS": "8",
            "REPOSITORY_MAX_SIZE_MB": "1",
            **extra,
        }

    def repo(self, name: str = "proj") -> str:
        return f"{self.server.url}/{name}.git"

    def stop(self) -> None:
        self.server.stop()
        self.other.stop()
        self.silent.stop()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    s = Setup(tmp_path_factory.mktemp("ws"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ws_gateway(gateways: Any, setup: Setup) -> Gateway:
    gateway: Gateway = gateways.get(**setup.env())
    return gateway


def write(path: str, content: str) -> dict[str, Any]:
    return {"tool": "write", "args": {"filePath": path, "content": content}}


def log_of(directory: str, *args: str) -> str:
    return git("log", "--format=%H%x00%an <%ae>%x00%B%x01", *args, cwd=Path(directory))


async def run(gateway: Gateway, **args: Any) -> dict[str, Any]:
    async with mcp_session(gateway.mcp_url) as s:
        return data(await s.call_tool("run_coding_task", args))


async def call(gateway: Gateway, tool: str, **args: Any) -> dict[str, Any]:
    async with mcp_session(gateway.mcp_url) as s:
        return data(await s.call_tool(tool, args))


async def test_clone_at_a_ref_commit_push_and_follow_up(ws_gateway: Gateway, setup: Setup) -> None:
    prompt = script(write("feature.py", "def feature():\n    return 1\n"), {"text": "Added feature.py."})
    done = await run(
        ws_gateway, prompt=prompt, repository=setup.repo(), ref="v1", branch="feature/one", push=True, title="Add it"
    )
    assert done["status"] == "completed", done
    ws = done["workspace"]
    assert ws["repository"] == setup.repo() and ws["ref"] == "v1" and ws["base_commit"] == setup.first
    assert ws["branch"] == "feature/one" and ws["pushed"] is True and ws["push_error"] is None
    assert ws["head_commit"] != ws["base_commit"]
    workdir = Path(ws["directory"])
    assert done["directory"] == ws["directory"]
    assert (workdir / "feature.py").exists() and not (workdir / "LATER.md").exists(), "must start at v1"
    assert setup.server.branch("proj", "feature/one") == ws["head_commit"], "the branch is on the server"
    head, author, message = log_of(ws["directory"], "-1").strip("\x01\n").split("\x00")
    assert head == ws["head_commit"] and author == AUTHOR
    assert message.startswith("Add it\n") and f"Opencode-Task-Id: {done['task_id']}" in message
    assert [f["path"] for f in done["files_changed"]] == ["feature.py"]
    status = await call(ws_gateway, "get_task_status", task_id=done["task_id"])
    assert status["workspace"] == ws

    follow = script(write("more.py", "X = 2\n"), {"text": "Added more.py."})
    again = await run(ws_gateway, prompt=follow, task_id=done["task_id"])
    assert again["status"] == "completed", again
    ws2 = again["workspace"]
    assert ws2["directory"] == ws["directory"] and ws2["branch"] == "feature/one"
    parent = git("rev-parse", f"{ws2['head_commit']}^", cwd=workdir).strip()
    assert parent == ws["head_commit"], "the follow-up adds a commit on top"
    assert ws2["pushed"] is True and setup.server.branch("proj", "feature/one") == ws2["head_commit"]
    assert f"Opencode-Task-Id: {again['task_id']}" in log_of(ws["directory"], "-1")
    diff = await call(ws_gateway, "get_task_diff", task_id=again["task_id"])
    assert sorted(f["path"] for f in diff["files"]) == ["feature.py", "more.py"], "the change against base_commit"


async def test_parallel_tasks_on_one_repository_are_isolated(ws_gateway: Gateway, setup: Setup) -> None:
    async with mcp_session(ws_gateway.mcp_url) as s:
        started = []
        for name in ("left.txt", "right.txt"):
            prompt = script({**write(name, f"{name}\n"), "hang": 1}, {"text": f"wrote {name}"})
            started.append(
                data(await s.call_tool("run_coding_task_async", {"prompt": prompt, "repository": setup.repo()}))
            )
        assert all(t["status"] == "running" for t in started)
        finals = [
            data(await s.call_tool("get_task_status", {"task_id": t["task_id"], "wait_seconds": 60})) for t in started
        ]
        diffs = [data(await s.call_tool("get_task_diff", {"task_id": t["task_id"]})) for t in started]
    assert [f["status"] for f in finals] == ["completed", "completed"], finals
    left, right = (f["workspace"] for f in finals)
    assert left["directory"] != right["directory"] and left["branch"] != right["branch"]
    for ws, final in ((left, finals[0]), (right, finals[1])):
        short = final["session_id"].removeprefix("ses_")[-10:]
        assert ws["branch"] == f"opencode/{short}" and ws["ref"] == "main"
        assert ws["pushed"] is False and setup.server.branch("proj", ws["branch"]) is None, "push was not asked"
    assert [[f["path"] for f in d["files"]] for d in diffs] == [["left.txt"], ["right.txt"]]
    assert not (Path(left["directory"]) / "right.txt").exists()
    assert not (Path(right["directory"]) / "left.txt").exists()


async def test_an_async_task_is_committed_with_nobody_waiting(ws_gateway: Gateway, setup: Setup) -> None:
    prompt = script(write("unattended.txt", "done\n"), {"text": "ok"})
    started = await call(ws_gateway, "run_coding_task_async", prompt=prompt, repository=setup.repo(), push=True)
    workdir = started["workspace"]["directory"]
    branch = started["workspace"]["branch"]
    deadline = time.monotonic() + 60
    while setup.server.branch("proj", branch) is None:  # no status call: only the idle watcher can do this
        assert time.monotonic() < deadline, "the finished task was never committed and pushed"
        await anyio.sleep(0.3)
    assert "Opencode-Task-Id: " + started["task_id"] in log_of(workdir, "-1")
    status = await call(ws_gateway, "get_task_status", task_id=started["task_id"])
    assert status["workspace"]["pushed"] is True
    assert status["workspace"]["head_commit"] == setup.server.branch("proj", branch)


async def test_a_failed_push_is_tried_again_without_anybody_asking(ws_gateway: Gateway, setup: Setup) -> None:
    setup.server.refusing_pushes = True  # as a git server restarting would
    try:
        prompt = script(write("later.txt", "pushed later\n"), {"text": "ok"})
        done = await run(ws_gateway, prompt=prompt, repository=setup.repo(), push=True)
    finally:
        setup.server.refusing_pushes = False
    ws = done["workspace"]
    assert done["status"] == "completed" and ws["pushed"] is False and ws["push_error"], done
    assert f"pushing branch {ws['branch']} failed" in done["next_step"] and "tries the push again" in done["next_step"]
    assert setup.server.branch("proj", ws["branch"]) is None
    deadline = time.monotonic() + 30
    while setup.server.branch("proj", ws["branch"]) != ws["head_commit"]:  # no call: the gateway's own retry
        assert time.monotonic() < deadline, "the failed push was never tried again"
        await anyio.sleep(0.3)
    status = await call(ws_gateway, "get_task_status", task_id=done["task_id"])
    assert status["workspace"]["pushed"] is True and status["workspace"]["push_error"] is None


async def test_replicas_commit_once_and_other_gateways_keep_out(
    ws_gateway: Gateway, gateways: Any, setup: Setup, tmp_path: Path
) -> None:
    """A replica on the same WORKSPACES_DIR races for every commit; a gateway with other
    settings (no credentials, its own directory) on the same OpenCode must not touch the task."""
    replica = Gateway(tmp_path / "replica", {k: v for k, v in ws_gateway.env.items() if k != "PORT"}).start()
    try:  # the replica is stopped even if the bystander does not start
        bystander: Gateway = gateways.get(
            REPOSITORY_ALLOWLIST=f"{setup.server.url}/", WORKSPACES_DIR=str(tmp_path / "elsewhere")
        )
        for _ in range(3):
            prompt = script(write("raced.txt", "once\n"), {"text": "ok"})
            done = await run(ws_gateway, prompt=prompt, repository=setup.repo(), push=True)
            ws = done["workspace"]
            assert ws["pushed"] is True and ws["push_error"] is None, ws
            await anyio.sleep(1.0)  # let every watcher have its go
            seen = await call(replica, "get_task_status", task_id=done["task_id"])
            assert seen["workspace"] == ws
            commits = git("rev-list", f"{ws['base_commit']}..{ws['branch']}", cwd=Path(ws["directory"])).split()
            assert commits == [ws["head_commit"]], "exactly one commit for one turn"
        assert "push of" not in bystander.logs() and "could not commit" not in bystander.logs()
    finally:
        replica.stop()


async def test_a_refused_task_leaves_no_worktree_or_branch_behind(ws_gateway: Gateway, setup: Setup) -> None:
    worktrees = setup.workspaces / "worktrees"
    before = set(worktrees.iterdir()) if worktrees.exists() else set()
    async with mcp_session(ws_gateway.mcp_url) as s:
        refused = await s.call_tool(
            "run_coding_task",
            {"prompt": "x", "repository": setup.repo(), "branch": "retry/me", "agent": "no-such-agent"},
        )
    assert refused.is_error and "no-such-agent" in error_text(refused)
    assert (set(worktrees.iterdir()) if worktrees.exists() else set()) == before
    done = await run(
        ws_gateway, prompt=script({"text": "ok"}), repository=setup.repo(), branch="retry/me", ref="refs/heads/main"
    )
    assert done["status"] == "completed" and done["workspace"]["branch"] == "retry/me"
    assert done["workspace"]["base_commit"] == setup.server.branch("proj", "main"), "a full ref name works too"
    assert done["workspace"]["head_commit"] == done["workspace"]["base_commit"], "nothing changed"


async def test_isolate_on_a_local_repository(ws_gateway: Gateway, tmp_path: Path) -> None:
    local = git_repo(tmp_path / "mine")
    before = git("rev-parse", "HEAD", cwd=local).strip()
    prompt = script(write("isolated.txt", "mine\n"), {"text": "ok"})
    done = await run(ws_gateway, prompt=prompt, directory=str(local), isolate=True, branch="try/isolated")
    ws = done["workspace"]
    assert done["status"] == "completed" and ws["repository"] == str(local.resolve())
    assert ws["base_commit"] == before and ws["directory"] != str(local)
    assert not (local / "isolated.txt").exists(), "the repository's own checkout stays untouched"
    assert git("show", "try/isolated:isolated.txt", cwd=local) == "mine\n", "the branch is in the repository"
    assert ws["head_commit"] == git("rev-parse", "try/isolated", cwd=local).strip()
    diff = await call(ws_gateway, "get_task_diff", task_id=done["task_id"])
    assert [f["path"] for f in diff["files"]] == ["isolated.txt"] and "+mine" in diff["files"][0]["patch"]


BAD_INPUT = [
    ({"repository": "https://git.evil.example/x.git"}, "not allowed: REPOSITORY_ALLOWLIST permits"),
    ({"repository": "file:///etc"}, "local paths, file://, ext::"),
    ({"repository": "/tmp/somewhere"}, "local paths, file://, ext::"),
    ({"repository": "ext::sh -c touch% /tmp/pwned"}, "local paths, file://, ext::"),
    ({"repository": "-uhttp://x"}, "local paths, file://, ext::"),
    ({"repository": "ssh://git@127.0.0.1/x.git"}, "local paths, file://, ext::"),
    ({"repository": "{server}/../proj.git"}, "'..'"),
    ({"repository": "{server}/nope.git"}, "not found"),
    ({"repository": "{closed}/x.git"}, "not reachable"),
    ({"repository": "{other}/locked.git"}, "authentication failed"),
    ({"repository": "{silent}/x.git"}, "timed out after 8s (REPOSITORY_FETCH_TIMEOUT_SECONDS=8"),
    ({"repository": "{server}/big.git"}, "larger than REPOSITORY_MAX_SIZE_MB=1"),
    ({"repository": "{server}/proj.git", "ref": "no-such-ref"}, "ref 'no-such-ref' not found"),
    ({"repository": "{server}/proj.git", "ref": "--upload-pack=touch /tmp/x"}, "is not a valid name"),
    ({"repository": "{server}/proj.git", "branch": "-f"}, "is not a valid name"),
    ({"repository": "{server}/proj.git", "branch": "main"}, "branch 'main' already exists"),
    ({"repository": "{server}/proj.git", "directory": "/tmp"}, "not both"),
    ({"directory": "{plain}", "isolate": True}, "not a git repository"),
    ({"directory": "{plain}", "isolate": True, "push": True}, "push needs repository"),
    ({"ref": "main"}, "need repository"),
]


@pytest.mark.parametrize(("args", "says"), BAD_INPUT)
async def test_bad_repository_input_is_a_clear_error(
    ws_gateway: Gateway, setup: Setup, tmp_path: Path, args: dict[str, Any], says: str
) -> None:
    where = {
        "server": setup.server.url,
        "other": setup.other.url,
        "closed": setup.closed,
        "silent": setup.silent.url,
        "plain": str(tmp_path),
    }
    filled = {k: v.format(**where) if isinstance(v, str) else v for k, v in args.items()}
    async with mcp_session(ws_gateway.mcp_url) as s:
        started = time.monotonic()
        result = await s.call_tool("run_coding_task", {"prompt": "x", **filled})
    assert result.is_error, result
    text = error_text(result)
    assert says in text, text
    assert PASSWORD not in text and WRONG not in text
    assert time.monotonic() - started < 20


async def test_without_an_allowlist_repository_is_refused_naming_the_setting(gateway: Gateway, setup: Setup) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        result = await s.call_tool("run_coding_task", {"prompt": "x", "repository": setup.repo()})
        follow = await s.call_tool("run_coding_task", {"prompt": "x", "task_id": "ses_00000000", "branch": "b"})
    assert result.is_error and "REPOSITORY_ALLOWLIST" in error_text(result)
    assert follow.is_error and "follow-up" in error_text(follow)


async def test_credentials_never_leak(ws_gateway: Gateway, setup: Setup) -> None:
    """Runs last in this module: scans what every earlier test left behind."""
    prompt = script(
        {"tool": "bash", "args": {"command": "env; git config --list --show-origin", "description": "look"}},
        {"text": "looked"},
    )
    done = await run(ws_gateway, prompt=prompt, repository=setup.repo(), push=True)
    messages = await call(ws_gateway, "get_task_messages", task_id=done["task_id"])
    shown = json.dumps([done, messages])
    assert "looked" in shown
    assert any(r["authorized"] for r in setup.server.requests), "the server saw the credential: it was used"
    leaks = [p for p in setup.workspaces.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert leaks == [], "worktrees and cached clones (their .git/config too) hold no credential"
    for config in setup.workspaces.glob("repos/*.git/config"):
        assert "url" not in config.read_text() and "credential" not in config.read_text()
    logs = ws_gateway.logs()
    assert "POST /mcp" in logs or "mcp" in logs.lower(), "the log to scan is the gateway's"
    for secret in (PASSWORD, WRONG):
        assert secret not in shown and secret not in logs
    assert setup.credentials.read_text() == setup.before, "GIT_CREDENTIALS_FILE is never rewritten"


async def test_a_credential_in_the_url_is_used_but_never_shown(gateways: Any, setup: Setup, tmp_path: Path) -> None:
    gateway: Gateway = gateways.get(REPOSITORY_ALLOWLIST=f"{setup.server.url}/", WORKSPACES_DIR=str(tmp_path))
    with_credential = setup.repo().replace("://", f"://alice:{PASSWORD}@")
    prompt = script(write("inline.txt", "1\n"), {"text": "ok"})
    done = await run(gateway, prompt=prompt, repository=with_credential, push=True)
    ws = done["workspace"]
    assert ws["repository"] == setup.repo() and ws["pushed"] is True, ws
    assert setup.server.branch("proj", ws["branch"]) == ws["head_commit"]
    assert PASSWORD not in json.dumps(done) and PASSWORD not in gateway.logs()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]


def test_spawned_opencode_gets_no_pointer_to_the_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from opencode_mcp_gateway.config import Settings
    from opencode_mcp_gateway.opencode.supervisor import OpenCodeSupervisor

    monkeypatch.setenv("GIT_CREDENTIALS_FILE", str(tmp_path / "creds"))
    settings = Settings(  # type: ignore[call-arg]
        spawn_opencode=True,
        opencode_api_url="http://127.0.0.1:1/v1",
        opencode_api_key="k",  # type: ignore[arg-type]
        opencode_model_name="m",
        opencode_state_dir=str(tmp_path / "state"),
    )
    supervisor = OpenCodeSupervisor(settings)
    supervisor.llm_proxy.close()
    assert "GIT_CREDENTIALS_FILE" not in supervisor.child_env()


async def test_idle_worktrees_are_removed_and_a_follow_up_brings_them_back(
    gateways: Any, setup: Setup, tmp_path: Path
) -> None:
    gateway: Gateway = gateways.get(**setup.env(WORKSPACE_TTL_HOURS="0.0015", WORKSPACES_DIR=str(tmp_path / "ttl")))
    done = await run(gateway, prompt=script(write("kept.txt", "kept\n"), {"text": "ok"}), repository=setup.repo())
    ws = done["workspace"]
    deadline = time.monotonic() + 30
    while Path(ws["directory"]).exists():
        assert time.monotonic() < deadline, "the idle worktree was not removed"
        await anyio.sleep(0.5)
    status = await call(gateway, "get_task_status", task_id=done["task_id"])
    assert status["workspace"]["head_commit"] == ws["head_commit"], "the record and the branch stay"
    diff = await call(gateway, "get_task_diff", task_id=done["task_id"])
    assert [f["path"] for f in diff["files"]] == ["kept.txt"], "the diff comes from the branch"
    again = await run(gateway, prompt=script(write("second.txt", "2\n"), {"text": "ok"}), task_id=done["task_id"])
    assert again["status"] == "completed" and (Path(ws["directory"]) / "kept.txt").exists()
    out = subprocess.run(
        ["git", "rev-parse", f"{again['workspace']['head_commit']}^"],
        cwd=ws["directory"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == ws["head_commit"]
