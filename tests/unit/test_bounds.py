from __future__ import annotations

import json
from typing import Any

from opencode_mcp_gateway.opencode import Message, Part
from opencode_mcp_gateway.tasks.bounds import page_diff, page_messages, task_conversation


def msg(mid: str, role: str, text: str = "", parent: str | None = None, output: str = "") -> Message:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    if output:
        parts.append(
            {
                "type": "tool",
                "tool": "bash",
                "state": {"status": "completed", "input": {"command": "x"}, "output": output},
            }
        )
    info = {"id": mid, "role": role, "time": {"created": 1}}
    if parent:
        info["parentID"] = parent
    return Message.model_validate({"info": info, "parts": parts})


CONVO = [
    msg(f"msg_{i:03d}", "assistant" if i % 2 else "user", f"text {i}", parent=f"msg_{i - 1:03d}") for i in range(1, 21)
]


def test_limit_keeps_the_newest_and_points_at_the_rest() -> None:
    page = page_messages(CONVO, limit=5, offset=0, budget=100_000, task_id="T")
    assert [m.text for m in page.items] == [f"text {i}" for i in range(16, 21)]
    assert page.truncated and "offset=5" in (page.note or "")
    older = page_messages(CONVO, limit=5, offset=5, budget=100_000, task_id="T")
    assert [m.text for m in older.items] == [f"text {i}" for i in range(11, 16)]


def test_everything_fits_is_not_truncated() -> None:
    page = page_messages(CONVO, limit=50, offset=0, budget=100_000, task_id="T")
    assert len(page.items) == 20 and not page.truncated and page.note is None


def test_budget_is_respected_and_said() -> None:
    big = [msg(f"msg_{i:03d}", "assistant", "x", parent="msg_000", output="y" * 3000) for i in range(1, 30)]
    page = page_messages(big, limit=50, offset=0, budget=20_000, task_id="T")
    assert len(json.dumps([m.model_dump() for m in page.items])) <= 20_000
    assert page.truncated and "older message(s) not shown" in (page.note or "")


def test_huge_tool_output_is_cut_with_a_marker() -> None:
    page = page_messages(
        [msg("msg_001", "assistant", output="z" * 50_000)], limit=5, offset=0, budget=60_000, task_id="T"
    )
    output = page.items[0].tool_calls[0].output or ""
    assert len(output) < 5_000 and "[cut 46000 more characters]" in output and page.truncated


def test_huge_tool_input_stays_an_object() -> None:
    message = msg("msg_001", "assistant")
    part = {"type": "tool", "tool": "write", "state": {"status": "completed", "input": {"content": "q" * 10_000}}}
    message.parts.append(Part.model_validate(part))
    call = page_messages([message], limit=5, offset=0, budget=60_000, task_id="T").items[0].tool_calls[0]
    assert call.input_truncated is True and call.input["truncated_json"].startswith('{"content": "qqq')


def test_conversation_stops_at_the_tasks_turn() -> None:
    convo = task_conversation(CONVO, "msg_010")
    assert convo[-1].info.id == "msg_011"  # the reply to msg_010 belongs to it


def test_diff_budget_cuts_patches_and_names_them() -> None:
    files = [
        {"file": f"f{i}.py", "patch": "+" * 10_000, "additions": 1, "deletions": 0, "status": "modified"}
        for i in range(10)
    ]
    page = page_diff(files, budget=20_000, task_id="T")
    assert len(json.dumps([f.model_dump() for f in page.items])) < 25_000
    assert page.truncated and "path=<file>" in (page.note or "")
    assert [f.path for f in page.items] == [f"f{i}.py" for i in range(10)]
    small = page_diff(files[:1], budget=60_000, task_id="T")
    assert not small.truncated and small.items[0].patch == "+" * 10_000
