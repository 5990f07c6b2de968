"""Shaped tasks on the fake OpenCode, which answers a listing that holds a message sent
with a format 400, as opencode 1.18.33 does."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support.client import data, error_text
from tests.support.fake_opencode import Fail, Reply, Structured, Tool
from tests.support.in_memory import in_memory_gateway

pytestmark = pytest.mark.anyio
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


async def test_schema_turns_are_read_past_the_messages_opencode_cannot_list() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Reply("plain first turn"))
        plain = data(await c.call_tool("run_coding_task", {"prompt": "Plain first"}))
        gw.fake.queue(Tool("read", {"filePath": "a.py"}), Structured({"n": 1}))
        one = data(
            await c.call_tool(
                "run_coding_task", {"prompt": "Count once", "output_schema": SCHEMA, "task_id": plain["task_id"]}
            )
        )
        gw.fake.queue(Structured({"n": 2}))
        two = data(
            await c.call_tool(
                "run_coding_task", {"prompt": "Count twice", "output_schema": SCHEMA, "task_id": one["task_id"]}
            )
        )
        # Every read of every turn: through the newest, past one and past two unreadable messages.
        states = [data(await c.call_tool("get_task_status", {"task_id": t["task_id"]})) for t in (plain, one, two)]
        conversation = data(await c.call_tool("get_task_messages", {"task_id": two["task_id"]}))
    assert [s["status"] for s in states] == ["completed"] * 3
    assert [s["structured_output"] for s in states] == [None, {"n": 1}, {"n": 2}]
    assert states[0]["result"] == "plain first turn"
    users = [m["text"] for m in conversation["messages"] if m["role"] == "user"]
    assert users == ["Plain first", "Count once", "Count twice"]  # the recorded prompts stand in


async def test_an_answer_that_does_not_match_and_a_model_that_cannot_comply_fail() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Structured({"n": "three"}))
        wrong = data(await c.call_tool("run_coding_task", {"prompt": "Count", "output_schema": SCHEMA}))
        name, message = "StructuredOutputError", "Model did not produce structured output"
        gw.fake.queue(Fail(message, name=name, status_code=None))
        prose = data(await c.call_tool("run_coding_task", {"prompt": "Count", "output_schema": SCHEMA}))
    assert wrong["status"] == "failed" and "does not match output_schema" in wrong["error"] and "n" in wrong["error"]
    assert wrong["structured_output"] == {"n": "three"}  # shown, to see what the model made
    assert prose["status"] == "failed" and message in prose["error"] and "could not produce" in prose["error"]


async def test_invalid_shapes_are_refused_before_any_session() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 10).decode()
    async with in_memory_gateway(max_attachments=1, max_attachment_bytes=100) as gw, gw.mcp() as c:
        bad: list[dict[str, Any]] = [
            {"output_schema": {"type": "object", "required": "n"}},
            {"output_schema": {"type": "string"}},
            {"read_only": True, "directory": "/srv/project", "isolate": True, "push": True},
            {"attachments": [{"filename": "a.bin", "mime_type": "application/octet-stream", "data": png}]},
            {"attachments": [{"filename": "a.png", "mime_type": "image/png", "data": png}] * 2},
        ]
        for extra in bad:
            result = await c.call_tool("run_coding_task_async", {"prompt": "x", **extra})
            assert result.is_error, extra
        sessions = len(gw.fake.world.sessions)
    assert sessions == 0, error_text(result)


async def test_a_read_only_turn_switches_off_the_writing_tools_for_that_turn_only() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Reply("read it"))
        first = data(await c.call_tool("run_coding_task", {"prompt": "Review", "read_only": True}))
        gw.fake.queue(Reply("wrote it"))
        second = data(await c.call_tool("run_coding_task", {"prompt": "Now fix", "task_id": first["task_id"]}))
        users = [m["info"] for m in gw.fake.messages(first["session_id"]) if m["info"]["role"] == "user"]
        again = data(await c.call_tool("get_task_status", {"task_id": first["task_id"]}))
    assert {"bash", "edit", "write", "apply_patch", "task"} <= {k for k, v in users[0]["tools"].items() if v is False}
    assert "read" not in users[0]["tools"] and "tools" not in users[1]
    assert first["read_only"] is True and again["read_only"] is True and second["read_only"] is False


async def test_attachments_become_parts_and_show_without_their_bytes() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 20
    files = [
        {"filename": "shot.png", "mime_type": "image/png", "data": base64.b64encode(png).decode()},
        {"filename": "notes.md", "mime_type": "text/markdown", "data": base64.b64encode(b"# secret notes").decode()},
    ]
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Reply("seen"))
        done = data(await c.call_tool("run_coding_task", {"prompt": "Look", "attachments": files}))
        shown = data(await c.call_tool("get_task_messages", {"task_id": done["task_id"]}))
        parts = next(m for m in gw.fake.messages(done["session_id"]) if m["info"]["role"] == "user")["parts"]
    assert parts[1]["type"] == "file" and parts[1]["url"].startswith("data:image/png;base64,")
    assert parts[2]["type"] == "text" and "# secret notes" in parts[2]["text"]
    user = shown["messages"][0]
    assert user["text"] == "Look" and "secret" not in str(shown)
    assert user["attachments"] == [
        {"filename": "shot.png", "mime_type": "image/png", "size": len(png)},
        {"filename": "notes.md", "mime_type": "text/markdown", "size": 14},
    ]


async def test_an_unsupported_opencode_gets_no_task_until_a_supported_one_answers() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.fail("GET /global/health", 200, '{"healthy": true, "version": "1.19.2"}', times=2)
        health = data(await c.call_tool("health_check", {}))
        refused = await c.call_tool("run_coding_task_async", {"prompt": "x"})
        gw.fake.queue(Reply("fine"))
        accepted = await c.call_tool("run_coding_task_async", {"prompt": "x"})  # the version is asked again
    assert health["opencode"]["healthy"] is False and health["opencode"]["version"] == "1.19.2"
    assert refused.is_error and "OpenCode 1.19.2 at" in error_text(refused) and "1.18.33" in error_text(refused)
    assert len(gw.fake.world.sessions) == 1 and not accepted.is_error
