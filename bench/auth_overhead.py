"""What authentication costs: median and p95 of one MCP initialize with no token (401), an
API key and an OAuth JWT (ES256), and list_tasks over 40 of the caller's tasks.

Run: .venv/bin/python -m bench.auth_overhead (needs `make setup`; takes about a minute).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx2

from tests.e2e.test_auth import CI_KEY, INIT, as_user, finish, oauth_gateway, start_task
from tests.support.client import data
from tests.support.fake_llm import FakeLLM
from tests.support.oidc_provider import OpenIDProvider
from tests.support.procs import Gateway, OpenCodeServer

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def initialize(gw: Gateway, bearer: str | None, n: int = 200) -> str:
    headers = {**HEADERS, **({"authorization": f"Bearer {bearer}"} if bearer else {})}
    with httpx2.Client(timeout=10) as http:
        http.post(gw.mcp_url, json=INIT, headers=headers)
        took = []
        for _ in range(n):
            started = time.perf_counter()
            status = http.post(gw.mcp_url, json=INIT, headers=headers).status_code
            took.append(time.perf_counter() - started)
    took.sort()
    return f"HTTP {status}: median {statistics.median(took) * 1000:.2f} ms, p95 {took[int(n * 0.95)] * 1000:.2f} ms"


async def listing(gw: Gateway, bearer: str) -> list[str]:
    async with as_user(gw, bearer) as s:
        tasks = [await start_task(s, f"bench-{i}") for i in range(40)]
        for task in tasks:
            await finish(s, task)
        lines = []
        for limit in (20, 100):
            took = []
            for _ in range(10):
                started = time.perf_counter()
                page = data(await s.call_tool("list_tasks", {"limit": limit}))
                took.append(time.perf_counter() - started)
            lines.append(
                f"list_tasks limit={limit}: {len(page['tasks'])} tasks, median {statistics.median(took) * 1000:.0f} ms"
            )
        return lines


def main() -> None:
    root = Path(tempfile.mkdtemp())
    llm = FakeLLM()
    opencode = OpenCodeServer(root / "opencode", llm.start()).start()
    idp = OpenIDProvider(root / "idp", {"alice": "tasks"}).start()
    (root / "gw").mkdir()
    gw = oauth_gateway(root / "gw", opencode, idp)
    try:
        print("no token    ", initialize(gw, None))
        print("API key     ", initialize(gw, CI_KEY))
        print("JWT (ES256) ", initialize(gw, idp.token("alice", resource=gw.mcp_url)))
        for line in asyncio.run(listing(gw, idp.token("alice", resource=gw.mcp_url))):
            print(line)
    finally:
        gw.stop()
        idp.stop()
        opencode.stop()
        llm.stop()


if __name__ == "__main__":
    main()
