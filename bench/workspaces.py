"""What an isolated workspace costs per task: `python -m bench.workspaces [--runs N]`.

Blocking run_coding_task calls whose scripted model writes one file, against the real
`opencode serve` and a loopback git server: plain (the shared directory), `isolate` on a
local repository, and `repository` (the first call clones, the rest fetch) with and
without `push`. Prints medians; the difference to "plain" is the workspace's cost.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from tests.support.client import data, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.git_server import GitServer
from tests.support.procs import Gateway, OpenCodeServer, git_repo


async def timed(url: str, args: dict[str, Any]) -> float:
    async with mcp_session(url) as s:
        started = time.perf_counter()
        result = data(await s.call_tool("run_coding_task", args))
        elapsed = time.perf_counter() - started
    assert result["status"] == "completed", result
    return elapsed


async def main(runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    llm = FakeLLM()
    opencode = OpenCodeServer(root / "opencode", llm.start()).start()
    server = GitServer(root / "served", "bench", "bench-token").start()
    server.create("proj", {f"f{i}.py": f"x = {i}\n" for i in range(200)})
    creds = root / "creds"
    creds.write_text(server.url.replace("://", "://bench:bench-token@") + "\n")
    env = {
        "OPENCODE_BASE_URL": opencode.url,
        "REPOSITORY_ALLOWLIST": server.url + "/",
        "GIT_CREDENTIALS_FILE": str(creds),
        "WORKSPACES_DIR": str(root / "workspaces"),
    }
    gateway = Gateway(root / "gateway", env).start()
    local = git_repo(root / "local")
    try:
        cases: dict[str, dict[str, object]] = {
            "plain": {},
            "isolate (local repository)": {"directory": str(local), "isolate": True},
            "repository (fetch)": {"repository": f"{server.url}/proj.git"},
            "repository + push": {"repository": f"{server.url}/proj.git", "push": True},
        }
        prompt = script({"tool": "write", "args": {"filePath": "out.txt", "content": "x\n"}}, {"text": "ok"})
        first = await timed(gateway.mcp_url, {"prompt": prompt, "repository": f"{server.url}/proj.git"})
        print(f"{'repository (first call: clone)':32} {first * 1000:8.0f} ms")
        for name, extra in cases.items():
            times = [await timed(gateway.mcp_url, {"prompt": prompt, **extra}) for _ in range(runs)]
            print(f"{name:32} {statistics.median(times) * 1000:8.0f} ms  (median of {runs})")
    finally:
        gateway.stop()
        server.stop()
        opencode.stop()
        llm.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    anyio.run(main, parser.parse_args().runs)
