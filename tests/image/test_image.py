"""The container image, run with podman: a real task through /mcp, clean SIGTERM, and an
arbitrary UID in group 0 as OpenShift assigns. Run by `make image-test`, which builds the
image first and sets IMAGE."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.support.client import data, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.procs import free_port

pytestmark = [pytest.mark.anyio]
IMAGE = os.environ.get("IMAGE", "")
BASE_IMAGE = os.environ.get("BASE_IMAGE", "")
TOKEN = "image-test-bearer-token"
ALICE, BOB = "alice-image-key-0123456789", "bob-image-key-0123456789"
PODMAN = shlex.split(os.environ.get("PODMAN", "podman --storage-driver vfs --runtime runc"))
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

if not IMAGE:
    pytest.skip("IMAGE is not set: run `make image-test`", allow_module_level=True)


def podman(*args: str) -> str:
    """Run podman; a failure shows podman's own reason, not only its exit status."""
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} failed with exit status {done.returncode}:\n{done.stderr.strip() or done.stdout}"
        )
    return done.stdout


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    fake = FakeLLM(require_key="sk-image-test")
    fake.url = fake.start()  # type: ignore[attr-defined]
    yield fake
    fake.stop()


class Container:
    def __init__(
        self,
        llm_url: str,
        workspace: Path,
        user: str | None,
        *,
        keys: Path | None = None,
        options: tuple[str, ...] = (),
    ) -> None:
        self.name = f"ocgw-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        command = ["run", "-d", "--name", self.name, "--network", "host", *LIMITS]
        if user:
            command += ["--user", user]
        env = {
            "PORT": str(self.port),
            "OPENCODE_BASE_URL": f"http://127.0.0.1:{free_port()}",
            "OPENCODE_API_URL": llm_url,
            "OPENCODE_API_KEY": "sk-image-test",
            "OPENCODE_MODEL_NAME": "image-model",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "MCP_BEARER_TOKEN": TOKEN,  # the image binds 0.0.0.0: it refuses to start without one
        }
        if keys is not None:  # several callers: each gets a sandbox (SANDBOX=caller by default)
            env |= {"MCP_API_KEYS_FILE": "/run/keys/api-keys"}
            del env["MCP_BEARER_TOKEN"]
            command += ["-v", f"{keys.parent}:/run/keys:ro"]
        for key, value in env.items():
            command += ["-e", f"{key}={value}"]
        command += [*options, "-v", f"{workspace}:/workspace", IMAGE]
        podman(*command)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        out = subprocess.run([*PODMAN, "logs", self.name], capture_output=True, text=True)
        return out.stdout + out.stderr

    def state(self) -> dict[str, object]:
        return json.loads(podman("inspect", self.name))[0]["State"]  # type: ignore[no-any-return]

    def wait_ready(self, timeout: float = 60) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if httpx2.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx2.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"container not ready in {timeout}s:\n{self.logs()[-3000:]}")

    def stop(self) -> float:
        started = time.monotonic()
        podman("stop", "-t", "20", self.name)
        return time.monotonic() - started

    def remove(self) -> None:
        subprocess.run([*PODMAN, "rm", "-f", self.name], capture_output=True)


def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    os.chmod(path, 0o777)  # the container's UID differs from ours
    for sub in path.rglob("*"):
        os.chmod(sub, 0o777)
    return path


USERS = pytest.mark.parametrize("user", [None, "12345:0"], ids=["image-user-1001", "arbitrary-uid"])


@pytest.mark.parametrize("image", ["base", "image"])
@pytest.mark.parametrize("user", ["1001:0", "12345:0"], ids=["uid-1001", "arbitrary-uid"])
def test_root_is_traversable_by_any_uid(image: str, user: str) -> None:
    """A base made from a 0700 directory gives an image whose / only root can enter: then
    `tini` is "not found" for every other UID. Checked on the base and on the image."""
    name = BASE_IMAGE if image == "base" else IMAGE
    if not name:
        pytest.skip("BASE_IMAGE is not set: run `make image-test`")
    mode = podman(
        "run", "--rm", "--network", "host", *LIMITS, "--user", user, "--entrypoint", "stat", name, "-c", "%a %u", "/"
    )
    assert mode.split() == ["755", "0"], f"/ in {name} is {mode.strip()} (mode, owner): it must be 755 root"
    if image == "image":
        podman("run", "--rm", "--network", "host", *LIMITS, "--user", user, "--entrypoint", "tini", name, "--version")


@USERS
async def test_image_runs_a_task_and_stops_cleanly(tmp_path: Path, llm: FakeLLM, user: str | None) -> None:
    ws = workspace(tmp_path)
    box = Container(llm.url, ws, user)  # type: ignore[attr-defined]
    try:
        box.wait_ready()
        steps = (
            {"tool": "write", "args": {"filePath": "from_container.py", "content": "print('hi')\n"}},
            {"text": "ok"},
        )
        async with mcp_session(box.url + "/mcp", headers={"Authorization": f"Bearer {TOKEN}"}) as s:
            done = data(await s.call_tool("run_coding_task", {"prompt": script(*steps), "timeout_seconds": 120}))
        assert done["status"] == "completed" and done["model"] == "gateway/image-model"
        assert (ws / "from_container.py").read_text() == "print('hi')\n"
        assert [f["path"] for f in done["files_changed"]] == ["from_container.py"]
        stop_seconds = box.stop()
        state = box.state()
        logs = box.logs()
        assert state["ExitCode"] == 0, logs[-3000:]
        assert stop_seconds < 10, f"SIGTERM took {stop_seconds:.1f}s"
        assert "opencode serve stopped cleanly" in logs, logs[-3000:]
        assert "sk-image-test" not in logs and TOKEN not in logs
    finally:
        box.remove()


async def test_image_gives_each_caller_a_sandbox(tmp_path: Path, llm: FakeLLM) -> None:
    """Bubblewrap is in the image: with several callers and /proc unmasked, `podman run` gives
    each caller a sandbox that sees none of the container's files. With podman's default
    masked /proc a sandbox cannot mount a /proc of its own: start-up stops, saying what to do."""
    keys = tmp_path / "keys" / "api-keys"
    keys.parent.mkdir()
    keys.write_text(f"alice {ALICE}\nbob {BOB}\n")
    os.chmod(keys.parent, 0o755)
    os.chmod(keys, 0o644)
    (tmp_path / "masked").mkdir()
    masked = Container(llm.url, workspace(tmp_path / "masked"), None, keys=keys)  # type: ignore[attr-defined]
    try:
        with anyio.fail_after(60):
            while masked.state()["Running"]:
                await anyio.sleep(0.5)
        assert masked.state()["ExitCode"] != 0
        assert "podman run --security-opt unmask=/proc/*" in masked.logs(), masked.logs()[-3000:]
    finally:
        masked.remove()
    unmasked = ("--security-opt", "unmask=/proc/*")
    box = Container(llm.url, workspace(tmp_path), None, keys=keys, options=unmasked)  # type: ignore[attr-defined]
    try:
        box.wait_ready()
        look = {"tool": "bash", "args": {"command": "cat /run/keys/api-keys 2>&1; echo done", "description": "look"}}
        async with mcp_session(box.url + "/mcp", headers={"Authorization": f"Bearer {ALICE}"}) as s:
            prompt = script(look, {"text": "ok"})
            done = data(await s.call_tool("run_coding_task", {"prompt": prompt, "timeout_seconds": 120}))
            shown = data(await s.call_tool("get_task_messages", {"task_id": done["task_id"]}))
        assert done["status"] == "completed" and done["task_id"].startswith("c-"), done
        output = json.dumps(shown)
        assert "No such file" in output and BOB not in output, output  # the keys stay outside the sandbox
    finally:
        logs = box.logs()
        box.remove()
    assert ALICE not in logs and "sandbox c-" in logs, logs[-3000:]
