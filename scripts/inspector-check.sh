#!/usr/bin/env bash
# Interoperability check with an independent client, the MCP Inspector CLI: lists the tools
# and runs a real coding task through the gateway (real opencode serve, scripted fake LLM).
# Needs `make setup` first; installs the pinned Inspector into a scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d /tmp/inspector-check.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$scratch"' EXIT
(cd "$scratch" && npm install --silent --no-audit --no-fund @modelcontextprotocol/inspector@2.12.0 >/dev/null)
port=$(.venv/bin/python -c 'from tests.support.procs import free_port; print(free_port())')
inspector=("$scratch/node_modules/.bin/mcp-inspector" --cli "http://127.0.0.1:$port/mcp" --transport http
           --header "Authorization: Bearer inspector-token")
export HOME="$scratch/home"   # the Inspector writes ~/.mcp-inspector

PORT=$port .venv/bin/python - <<'PY' &
import os, signal, sys, tempfile, time
from pathlib import Path
from tests.support.fake_llm import FakeLLM
from tests.support.procs import Gateway, OpenCodeServer, free_port
llm = FakeLLM()
root = Path(tempfile.mkdtemp())
opencode = OpenCodeServer(root, llm.start()).start()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so `finally` stops both servers
gateway = Gateway(root / "gw", {"OPENCODE_BASE_URL": opencode.url, "MCP_BEARER_TOKEN": "inspector-token",
                                "PORT": os.environ["PORT"]})
gateway.port = int(os.environ["PORT"])
gateway.start()
print("ready", flush=True)
try:
    time.sleep(600)
finally:
    gateway.stop()
    opencode.stop()
PY
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.5; done

echo "== tools/list"
"${inspector[@]}" --method tools/list | .venv/bin/python -c '
import json, sys
tools = json.load(sys.stdin)["tools"]
for t in tools:
    print(t["name"].ljust(24), "outputSchema:", bool(t.get("outputSchema")), "annotations:", t.get("annotations"))
names = {t["name"] for t in tools}
expected = {"run_coding_task", "run_coding_task_async", "get_task_status", "get_task_messages", "get_task_diff",
            "abort_task", "respond_to_task", "list_tasks", "list_agents", "health_check"}
assert names == expected, names ^ expected'


echo "== tools/call run_coding_task"
prompt='Write it FAKE_SCRIPT: [{"tool":"write","args":{"filePath":"inspector.txt","content":"hello\n"}},{"text":"Wrote inspector.txt"}]'
"${inspector[@]}" --method tools/call --tool-name run_coding_task --tool-arg "prompt=$prompt" | .venv/bin/python -c '
import json, sys
result = json.load(sys.stdin)
s = result["structuredContent"]
print(s["status"], repr(s["result"]), s["files_changed"])
assert not result.get("isError") and s["status"] == "completed" and s["files_changed"][0]["path"] == "inspector.txt"'

echo "== bad input is a tool error"
{ "${inspector[@]}" --method tools/call --tool-name get_task_status --tool-arg task_id=bogus || true; } \
  | .venv/bin/python -c '
import json, sys
result = json.load(sys.stdin)
print(result["content"][0]["text"])
assert result["isError"] is True'
echo "inspector check passed"
