"""Can OpenCode's session metadata carry the webhooks' delivery record? `python -m bench.webhook_records`

Against the real `opencode serve`: the size of a session's metadata with a full `notify`
record (64 settled events, two destinations) beside owner, budget and workspace, the time of
a PATCH (what marking a delivery costs) and a GET with and without it, and whether a record
far larger than the gateway keeps is still stored and read back whole.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from tests.support.fake_llm import FakeLLM
from tests.support.procs import OpenCodeServer


def main() -> None:

    llm = FakeLLM()
    url = llm.start()
    root = Path(tempfile.mkdtemp())
    oc = OpenCodeServer(root, url).start()
    try:
        c = httpx2.Client(base_url=oc.url, timeout=30)
        sid = c.post("/session", json={"title": "m", "metadata": {"createdBy": "x"}}).json()["id"]
        base: dict[str, Any] = {
            "createdBy": "opencode-mcp-gateway",
            "permissionPolicy": "allow",
            "owner": "alice",
            "budget": {"max_tokens": 100000},
            "workspace": {
                "repository": "https://git.example.com/team/app.git",
                "ref": "main",
                "base_commit": "a" * 40,
                "branch": "opencode/x",
                "head_commit": "b" * 40,
                "directory": "/w/worktrees/wt-123456789abc",
                "pushed": True,
                "push_error": None,
                "push": True,
                "git_dir": "/w/repos/abc.git",
                "remote": True,
                "task_id": "ses_x.msg_y",
            },
        }
        sent = {f"evt_{i:032x}": {"caller": "delivered", "deployment": "delivered"} for i in range(64)}
        meta: dict[str, Any] = {
            **base,
            "notify": {
                "url": "https://hooks.example.com/team/ci?token=" + "t" * 40,
                "task": "msg_24b44c307000fOuRaOCk8B1Dg3",
                "deployment": True,
                "sent": sent,
            },
        }
        print("metadata bytes:", len(json.dumps(meta)), "of which notify:", len(json.dumps(meta["notify"])))
        patches, gets = [], []
        for _ in range(30):
            t = time.perf_counter()
            r = c.patch(f"/session/{sid}", json={"metadata": meta})
            patches.append(time.perf_counter() - t)
            r.raise_for_status()
            t = time.perf_counter()
            back = c.get(f"/session/{sid}").json()
            gets.append(time.perf_counter() - t)
        small = []
        for _ in range(30):
            t = time.perf_counter()
            c.patch(f"/session/{sid}", json={"metadata": base})
            small.append(time.perf_counter() - t)
        print(f"PATCH without notify median {statistics.median(small) * 1000:.1f} ms")
        c.patch(f"/session/{sid}", json={"metadata": meta})
        back = c.get(f"/session/{sid}").json()
        assert back["metadata"] == meta, "metadata not kept as sent"
        big = {
            **meta,
            "notify": {**meta["notify"], "sent": {f"evt_{i:032x}": {"caller": "delivered"} for i in range(5000)}},
        }
        r = c.patch(f"/session/{sid}", json={"metadata": big})
        print(
            "5000-entry record (",
            len(json.dumps(big)),
            "bytes): HTTP",
            r.status_code,
            "kept:",
            c.get(f"/session/{sid}").json()["metadata"] == big,
        )
        print(
            f"PATCH median {statistics.median(patches) * 1000:.1f} ms, GET median {statistics.median(gets) * 1000:.1f} ms (n=30)"
        )
        t = time.perf_counter()
        n = len(c.get("/experimental/session", params={"roots": "true", "limit": 500}).json())
        print(f"list {n} sessions: {(time.perf_counter() - t) * 1000:.1f} ms")
    finally:
        oc.stop()
        llm.stop()


if __name__ == "__main__":
    main()
