"""Shaped tasks against the real `opencode serve`: output_schema, attachments, read_only,
text that looks like JSON, and a gateway in front of an OpenCode it does not speak."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import pytest

from opencode_mcp_gateway.opencode.pins import OPENCODE_SUPPORTED
from tests.conftest import GatewayPool
from tests.support.client import data, error_text, mcp_session, script
from tests.support.fake_llm import FakeLLM, JSONHandler
from tests.support.procs import Gateway, OpenCodeServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SCHEMA = {
    "type": "object",
    "properties": {"endpoints": {"type": "array", "items": {"type": "string"}}, "count": {"type": "integer"}},
    "required": ["endpoints", "count"],
    "additionalProperties": False,
}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def sessions_in(opencode: OpenCodeServer) -> set[str]:
    found = httpx2.get(f"{opencode.url}/experimental/session", params={"roots": "true", "limit": 1000}).json()
    return {s["id"] for s in found}


# -- output_schema ------------------------------------------------------------------------------
async def test_a_schema_honoured_gives_the_object_and_every_read_survives(
    gateway: Gateway, opencode: OpenCodeServer
) -> None:
    answer = {"endpoints": ["/admin", "/debug"], "count": 2}
    async with mcp_session(gateway.mcp_url) as s:
        first = data(
            await s.call_tool(
                "run_coding_task",
                {"prompt": script({"structured": answer}, say="List the endpoints."), "output_schema": SCHEMA},
            )
        )
        assert first["status"] == "completed", first
        assert first["structured_output"] == answer
        jsonschema.validate(first["structured_output"], SCHEMA)
        # A follow-up with a new schema, after which the first turn lies behind two unreadable messages.
        other = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        second = data(
            await s.call_tool(
                "run_coding_task",
                {
                    "prompt": script({"structured": {"ok": True}}, say="Check again."),
                    "output_schema": other,
                    "task_id": first["task_id"],
                },
            )
        )
        assert second["status"] == "completed" and second["structured_output"] == {"ok": True}, second
        status = data(await s.call_tool("get_task_status", {"task_id": first["task_id"]}))
        assert status["status"] == "completed" and status["structured_output"] == answer
        messages = data(await s.call_tool("get_task_messages", {"task_id": second["task_id"]}))
        users = [m for m in messages["messages"] if m["role"] == "user"]
        assert [u["text"].splitlines()[0] for u in users] == ["List the endpoints.", "Check again."]
        calls = [c["tool"] for m in messages["messages"] for c in m["tool_calls"]]
        assert calls == ["StructuredOutput", "StructuredOutput"]
        diff = data(await s.call_tool("get_task_diff", {"task_id": first["task_id"]}))
        assert diff["files"] == []
        listed = data(await s.call_tool("list_tasks", {"limit": 100}))
        mine = next(t for t in listed["tasks"] if t["task_id"] == second["task_id"])
        assert mine["status"] == "completed"


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"structured": {"endpoints": "all of them", "count": 2}}, "does not match output_schema"),
        ({"text": "There are two endpoints: /admin and /debug."}, "could not produce the structured output"),
    ],
    ids=["non-matching-object", "prose"],
)
async def test_a_schema_the_model_breaks_fails_the_task(gateway: Gateway, step: dict[str, Any], expected: str) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        result = data(
            await s.call_tool(
                "run_coding_task", {"prompt": script(step, step, step), "output_schema": SCHEMA, "timeout_seconds": 120}
            )
        )
    assert result["status"] == "failed", result
    assert expected in result["error"] and "StructuredOutputError" in result["error"], result["error"]


async def test_another_gateway_reads_the_same_turn_facts(gateway: Gateway, gateways: GatewayPool) -> None:
    """Per-turn facts live in OpenCode's records: a second replica, which never saw the
    submission, reports the same validation, read-only flag and prompt."""
    other = gateways.get(SESSION_TITLE_PREFIX="OCP Gateway")  # its own process, the same OpenCode
    wrong = {"structured": {"endpoints": "all", "count": 1}}
    async with mcp_session(gateway.mcp_url) as s:
        first = data(
            await s.call_tool(
                "run_coding_task",
                {"prompt": script(wrong, say="Audit it."), "output_schema": SCHEMA, "read_only": True},
            )
        )
    async with mcp_session(other.mcp_url) as s:
        seen = data(await s.call_tool("get_task_status", {"task_id": first["task_id"]}))
        messages = data(await s.call_tool("get_task_messages", {"task_id": first["task_id"]}))
    assert first["status"] == "failed" and first["read_only"] is True
    for key in ("status", "error", "read_only", "structured_output"):
        assert seen[key] == first[key], key
    assert messages["messages"][0]["text"].startswith("Audit it.")


async def test_the_budget_watcher_stops_a_schema_task_it_cannot_list(gateway: Gateway) -> None:
    read = {"tool": "read", "args": {"filePath": "README.md"}}
    stuck = {"text": "never said", "hang": 60}
    async with mcp_session(gateway.mcp_url) as s:
        started = data(
            await s.call_tool(
                "run_coding_task_async",
                {"prompt": script(read, read, stuck), "output_schema": SCHEMA, "max_tokens": 200},
            )
        )
        final = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 40}))
    assert final["status"] == "aborted" and final["error"] == "budget exceeded: 240 tokens > max_tokens 200", final


async def test_an_invalid_schema_is_refused_before_any_session(gateway: Gateway, opencode: OpenCodeServer) -> None:
    before = sessions_in(opencode)
    async with mcp_session(gateway.mcp_url) as s:
        for schema, words in (
            (
                {"type": "object", "properties": {"n": {"type": "integer", "minimum": "zero"}}},
                "not a valid JSON Schema",
            ),
            ({"type": "array"}, "must describe a JSON object"),
            ({"type": "object", "description": "x" * 20_000}, "the limit is 16384 bytes"),
        ):
            result = await s.call_tool("run_coding_task_async", {"prompt": "x", "output_schema": schema})
            assert result.is_error and words in error_text(result), error_text(result)
    assert sessions_in(opencode) == before


# -- attachments --------------------------------------------------------------------------------
async def test_an_image_and_a_text_file_reach_the_model(gateway: Gateway, fake_llm: FakeLLM) -> None:
    marker = uuid.uuid4().hex
    files = [
        {"filename": "shot.png", "mime_type": "image/png", "data": b64(PNG)},
        {"filename": "routes.json", "mime_type": "application/json", "data": b64(b'{"routes": ["/admin"]}')},
    ]
    async with mcp_session(gateway.mcp_url) as s:
        result = data(
            await s.call_tool(
                "run_coding_task",
                {
                    "prompt": script({"text": "seen"}, say=f"Look {marker}."),
                    "model": "fake/vision-model",
                    "attachments": files,
                },
            )
        )
        assert result["status"] == "completed", result
        messages = data(await s.call_tool("get_task_messages", {"task_id": result["task_id"]}))
    seen = fake_llm.user_parts(marker)
    assert any(p.get("type") == "image_url" and b64(PNG) in json.dumps(p) for p in seen), seen
    assert any(p.get("type") == "text" and '{"routes": ["/admin"]}' in p["text"] for p in seen), seen
    user = next(m for m in messages["messages"] if m["role"] == "user")
    assert user["attachments"] == [
        {"filename": "shot.png", "mime_type": "image/png", "size": len(PNG)},
        {"filename": "routes.json", "mime_type": "application/json", "size": 22},
    ]
    assert b64(PNG) not in json.dumps(messages) and "/admin" not in json.dumps(messages)


async def test_every_bad_attachment_is_refused_naming_it_and_the_limit(gateways: GatewayPool) -> None:
    gateway = gateways.get(MAX_ATTACHMENT_BYTES="1000", MAX_ATTACHMENTS="2")
    one = {"filename": "a.txt", "mime_type": "text/plain", "data": b64(b"hello")}
    cases = [
        ([{**one, "filename": "bad.txt", "data": "%%%not base64"}], ["'bad.txt'", "not valid base64"]),
        ([{**one, "filename": "tool.exe", "mime_type": "application/x-msdownload"}], ["'tool.exe'", "not accepted"]),
        ([{**one, "filename": "big.txt", "data": b64(b"x" * 1001)}], ["'big.txt'", "1000"]),
        ([one, one, one], ["3 attachments", "MAX_ATTACHMENTS=2"]),
        ([{**one, "filename": "fake.png", "mime_type": "image/png"}], ["'fake.png'", "not a image/png image"]),
    ]
    blind = {"filename": "shot.png", "mime_type": "image/png", "data": b64(PNG)}
    async with mcp_session(gateway.mcp_url) as s:
        result = await s.call_tool(
            "run_coding_task_async", {"prompt": "x", "attachments": [blind], "model": "fake/fake-model"}
        )
        assert result.is_error and "does not take image input" in error_text(result), error_text(result)
        for files, words in cases:
            result = await s.call_tool("run_coding_task_async", {"prompt": "x", "attachments": files})
            assert result.is_error, files
            assert all(w in error_text(result) for w in words), error_text(result)


async def test_the_request_limit_admits_the_attachments_allowed(gateway: Gateway, opencode: OpenCodeServer) -> None:
    """4.5 MiB (6 MiB of base64) is over the SDK's 4 MiB default: it reaches the tool, which
    refuses the call for its schema, so nothing runs."""
    big = {"filename": "big.log", "mime_type": "text/plain", "data": b64(b"log line\n" * 524_288)}
    async with mcp_session(gateway.mcp_url) as s:
        result = await s.call_tool(
            "run_coding_task_async", {"prompt": "x", "attachments": [big], "output_schema": {"type": "array"}}
        )
    assert result.is_error and "must describe a JSON object" in error_text(result), error_text(result)


# -- read_only ----------------------------------------------------------------------------------
def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


async def test_a_read_only_task_changes_nothing_and_shows_the_refusals(
    gateway: Gateway, opencode: OpenCodeServer
) -> None:
    before = tree(opencode.workspace)
    steps = (
        {"tool": "write", "args": {"filePath": "new.txt", "content": "x"}},
        {"tool": "edit", "args": {"filePath": "README.md", "oldString": "scratch", "newString": "hacked"}},
        {"tool": "bash", "args": {"command": "echo hacked > shell.txt", "description": "write"}},
        {"text": "I could only read."},
    )
    async with mcp_session(gateway.mcp_url) as s:
        result = data(await s.call_tool("run_coding_task", {"prompt": script(*steps), "read_only": True}))
        messages = data(await s.call_tool("get_task_messages", {"task_id": result["task_id"]}))
        listed = data(await s.call_tool("list_tasks", {"limit": 100}))
        follow = data(
            await s.call_tool("run_coding_task", {"prompt": script({"text": "ok"}), "task_id": result["task_id"]})
        )
    assert tree(opencode.workspace) == before
    assert result["status"] == "completed" and result["result"] == "I could only read.", result
    assert result["files_changed"] == [] and result["read_only"] is True
    refused = [(c["tool"], c["status"]) for m in messages["messages"] for c in m["tool_calls"]]
    assert refused == [("write", "refused"), ("edit", "refused"), ("bash", "refused")], refused
    assert next(t for t in listed["tasks"] if t["task_id"] == result["task_id"])["read_only"] is True
    assert follow["status"] == "completed" and follow["read_only"] is False  # each turn says its own


async def test_a_read_only_isolated_task_commits_nothing(gateway: Gateway, opencode: OpenCodeServer) -> None:
    steps = ({"tool": "write", "args": {"filePath": "new.txt", "content": "x"}}, {"text": "done"})
    async with mcp_session(gateway.mcp_url) as s:
        result = data(
            await s.call_tool(
                "run_coding_task",
                {
                    "prompt": script(*steps),
                    "read_only": True,
                    "directory": str(opencode.workspace),
                    "isolate": True,
                },
            )
        )
        pushed = await s.call_tool(
            "run_coding_task_async",
            {"prompt": "x", "read_only": True, "directory": str(opencode.workspace), "isolate": True, "push": True},
        )
    assert result["status"] == "completed" and result["files_changed"] == [], result
    workspace = result["workspace"]
    assert workspace["head_commit"] in (None, workspace["base_commit"]), workspace
    log = subprocess.run(
        ["git", "log", "--oneline", f"{workspace['base_commit']}..{workspace['branch']}"],
        cwd=opencode.workspace,
        capture_output=True,
        text=True,
    )
    assert log.stdout.strip() == ""
    assert pushed.is_error and "nothing to push" in error_text(pushed)


# -- text arrives as given ----------------------------------------------------------------------
@pytest.mark.parametrize("text", ["null", "123", "true", "[1]"])
async def test_text_that_looks_like_json_reaches_opencode_unchanged(
    gateway: Gateway, opencode: OpenCodeServer, text: str
) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        titled = data(
            await s.call_tool("run_coding_task_async", {"prompt": "A task with a plain prompt", "title": text})
        )
        prompted = data(await s.call_tool("run_coding_task_async", {"prompt": text, "title": "A plain title"}))
    session = httpx2.get(f"{opencode.url}/session/{titled['session_id']}").json()
    assert session["title"].endswith(f": {text}"), session["title"]
    messages = httpx2.get(f"{opencode.url}/session/{prompted['session_id']}/message").json()
    user = next(m for m in messages if m["info"]["role"] == "user")
    assert [p["text"] for p in user["parts"] if p["type"] == "text"] == [text]


# -- an OpenCode the gateway does not speak -----------------------------------------------------
class OpenCodeTwo(JSONHandler):
    """OpenCode 2's server as integrators describe it: no /global/health, its version at /api/info."""

    version: str | None = "2.0.0"

    def do_GET(self) -> None:
        if self.path.startswith("/api/info") and self.version:
            self._json(200, {"version": self.version, "name": "opencode"})
        else:
            self._json(404, {"name": "NotFoundError", "data": {"message": "not found"}})


@pytest.fixture(params=["2.0.0", None], ids=["opencode-2", "nothing"])
def unsupported(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Gateway, str | None]]:
    handler = type("Handler", (OpenCodeTwo,), {"version": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    gateway = Gateway(tmp_path, {"OPENCODE_BASE_URL": url}).start()
    yield gateway, request.param
    gateway.stop()
    server.shutdown()
    server.server_close()


async def test_an_unsupported_opencode_is_named_everywhere(unsupported: tuple[Gateway, str | None]) -> None:
    gateway, version = unsupported
    words = f"OpenCode {version} at" if version else "no supported OpenCode answers at"
    ready = httpx2.get(f"{gateway.url}/readyz")
    assert ready.status_code == 503 and words in ready.text and OPENCODE_SUPPORTED[0] in ready.text, ready.text
    async with mcp_session(gateway.mcp_url) as s:
        health = data(await s.call_tool("health_check", {}))
        refused = await s.call_tool("run_coding_task", {"prompt": "x"})
    assert health["opencode"]["healthy"] is False and health["opencode"]["version"] == version
    assert words in health["opencode"]["error"] and OPENCODE_SUPPORTED[1] in health["opencode"]["error"]
    assert refused.is_error and words in error_text(refused) and OPENCODE_SUPPORTED[0] in error_text(refused)
