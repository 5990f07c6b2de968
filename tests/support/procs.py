"""Real processes for the end-to-end tests: `opencode serve` and the gateway."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2

from opencode_mcp_gateway.opencode.setup import OFFLINE_ENV, prepare_state

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def opencode_binary() -> str:
    configured = os.environ.get("OPENCODE_BIN")
    default = REPO / ".tools" / "node_modules" / "opencode-linux-x64" / "bin" / "opencode"
    binary = configured or str(default)
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"opencode binary not found at {binary}: run `make test` (it installs opencode-ai)")
    return binary


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "README.md").write_text("# scratch project\n")
    run = {"cwd": path, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "add", "."], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], **run)  # type: ignore[call-overload]
    return path


def isolated_env(state: Path) -> dict[str, str]:
    """OpenCode's state in `state`, offline: the same set-up spawn mode uses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCODE_", "MCP_"))}
    env.update(prepare_state(state))
    env.update(OFFLINE_ENV)
    return env


def fake_provider_config(llm_url: str) -> dict[str, Any]:
    return {
        "$schema": "https://opencode.ai/config.json",
        "model": "fake/fake-model",
        "small_model": "fake/fake-model",
        "enabled_providers": ["fake"],
        "autoupdate": False,
        "share": "disabled",
        "provider": {
            "fake": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Fake LLM",
                "options": {"baseURL": llm_url, "apiKey": "sk-fake"},
                "models": {
                    "fake-model": {
                        "name": "Fake Model",
                        "tool_call": True,
                        "limit": {"context": 128000, "output": 8192},
                    },
                    "other-model": {"name": "Other", "tool_call": True, "limit": {"context": 128000, "output": 8192}},
                    "vision-model": {  # takes images: OpenCode sends them as image_url parts
                        "name": "Vision",
                        "tool_call": True,
                        "attachment": True,
                        "modalities": {"input": ["text", "image"], "output": ["text"]},
                        "limit": {"context": 128000, "output": 8192},
                    },
                },
            }
        },
    }


class OpenCodeServer:
    """`opencode serve` with isolated state, the fake LLM as its only provider."""

    def __init__(self, root: Path, llm_url: str, port: int | None = None) -> None:
        self.root = root
        self.llm_url = llm_url
        self.port = port or free_port()
        self.workspace = git_repo(root / "workspace")
        self.env = isolated_env(root / "state")
        self.env["OPENCODE_CONFIG_CONTENT"] = json.dumps(fake_provider_config(llm_url))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60, health_auth: tuple[str, str] | None = None) -> OpenCodeServer:
        with open(self.root / "opencode.log", "ab") as log:  # the child keeps its own copy of the file
            self.proc = tracked(
                subprocess.Popen(
                    [opencode_binary(), "serve", "--hostname", "127.0.0.1", "--port", str(self.port)],
                    cwd=self.workspace,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + timeout
        try:
            wait_for_line(self.proc, self.root / "opencode.log", b"listening on", timeout, what="opencode serve")
            wait_http(f"{self.url}/global/health", timeout=deadline - time.monotonic(), auth=health_auth)
        except BaseException:
            stop_process(self.proc)  # a server that did not come up is not left running
            raise
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Gateway:
    """The gateway as users run it: the console script, configured by environment."""

    def __init__(self, root: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.root = root
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCODE_", "MCP_", "PERMISSION_"))}
        self.env.update({"PORT": str(self.port), "HOST": "127.0.0.1", "LOG_LEVEL": "INFO"})
        self.env.update(env)
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return self.url + self.env.get("MCP_PATH", "/mcp")

    def start(self, timeout: float = 30) -> Gateway:
        self.root.mkdir(parents=True, exist_ok=True)
        script = Path(sys.executable).with_name("opencode-mcp-gateway")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "opencode_mcp_gateway"]
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the file
            self.proc = tracked(
                subprocess.Popen(
                    [*command, *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root
                )
            )
        try:
            wait_http(f"{self.url}/healthz", timeout=timeout, proc=self.proc, log=self.log_path)
        except BaseException:
            stop_process(self.proc)  # a gateway that did not come up is not left running
            raise
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None


def run_to_exit(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The gateway in a clean environment, for a configuration that must stop at start-up."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), **env}
    return subprocess.run(
        [sys.executable, "-m", "opencode_mcp_gateway", *args],
        env=clean,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def wait_for_line(
    proc: subprocess.Popen[bytes], log: Path, marker: bytes, timeout: float, *, what: str, offset: int = 0
) -> None:
    """Until `marker` appears in `log` past `offset` (fails if the process ends first)."""
    deadline = time.monotonic() + timeout
    while marker not in log.read_bytes()[offset:]:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)


_STARTED: list[subprocess.Popen[bytes]] = []  # every server the tests started, to stop any left over


def tracked(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    _STARTED.append(proc)
    return proc


def stop_leftovers() -> int:
    """Stops what a failed test left running (its cleanup never ran); returns how many."""
    left = [p for p in _STARTED if p.poll() is None]
    for proc in left:
        stop_process(proc, timeout=5)
    _STARTED.clear()
    return len(left)


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(
    url: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    auth: tuple[str, str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}): {log.read_text()[-3000:] if log else ''}")
        try:
            if httpx2.get(url, timeout=0.5, auth=auth).status_code < 500:
                return
        except httpx2.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s ({last})")
