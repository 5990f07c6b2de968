"""Memory of the gateway at its session cap: MAX_SESSIONS (default 1000) open sessions,
held by clients that never close them (MAX_SESSIONS_PER_CLIENT each, from distinct
loopback addresses). Prints the resident set size before and at the cap.

    .venv/bin/python -m bench.session_memory [--sessions 1000] [--per-client 100]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import httpx2

from tests.support.client import INITIALIZE as INIT
from tests.support.client import MCP_HEADERS
from tests.support.procs import Gateway, free_port


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--per-client", type=int, default=100)
    args = parser.parse_args()
    env = {
        "OPENCODE_BASE_URL": f"http://127.0.0.1:{free_port()}",  # not needed to hold sessions
        "MAX_SESSIONS": str(args.sessions),
        "MAX_SESSIONS_PER_CLIENT": str(args.per_client),
    }
    with tempfile.TemporaryDirectory() as tmp:
        gw = Gateway(Path(tmp), env).start()
        try:
            assert gw.proc is not None
            before = rss_kib(gw.proc.pid)
            statuses: dict[int, int] = {}
            clients = -(-args.sessions // args.per_client) + 1  # one more than the cap needs
            for n in range(clients):
                transport = httpx2.HTTPTransport(local_address=f"127.0.1.{n + 1}")
                with httpx2.Client(transport=transport, timeout=30) as http:
                    for _ in range(args.per_client):
                        code = http.post(gw.mcp_url, json=INIT, headers=MCP_HEADERS).status_code
                        statuses[code] = statuses.get(code, 0) + 1
            at_cap = rss_kib(gw.proc.pid)
        finally:
            gw.stop()
    print(f"responses: {statuses}")
    print(f"RSS idle {before / 1024:.0f} MiB, at {args.sessions} sessions {at_cap / 1024:.0f} MiB")
    print(f"per session: {(at_cap - before) / args.sessions:.1f} KiB")


if __name__ == "__main__":
    main()
