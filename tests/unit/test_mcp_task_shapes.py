"""The gateway's task as the spec's Task: the status mapping and each era's field names."""

from __future__ import annotations

import pytest
from mcp_types import CallToolResult, TextContent

from opencode_mcp_gateway.tasks.views import PendingRequest, Question, TaskView
from opencode_mcp_gateway.tools.mcp_tasks.shapes import detailed, task
from tests.support.schemas import check

ID = "ses_0123456789abcdefghij.msg_0123456789abcdefghij"


def view(status: str, **fields: object) -> TaskView:
    return TaskView.model_validate(
        {
            "task_id": ID,
            "status": status,
            "session_id": ID.split(".")[0],
            "created_at": "2026-12-06T10:00:00Z",
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("ours", "spec"),
    [
        ("running", "working"),
        ("waiting_for_input", "input_required"),
        ("completed", "completed"),
        ("failed", "failed"),
        ("aborted", "cancelled"),
    ],
)
def test_every_gateway_status_has_its_spec_status_in_both_eras(ours: str, spec: str) -> None:
    pending = [PendingRequest(id="per_1", kind="permission", description="Edit /etc/x")]
    shown = view(
        ours, pending=pending if ours == "waiting_for_input" else [], error="boom", completed_at="2026-12-06T10:05:00Z"
    )
    result = CallToolResult(content=[TextContent(type="text", text="{}")], structured_content={"status": ours})
    modern, legacy = detailed(shown, result), task(shown, modern=False)
    assert modern["status"] == legacy["status"] == spec
    check("2026-07-28", "GetTaskResult", {"resultType": "complete", **modern})
    check("2025-11-25", "GetTaskResult", legacy)
    assert "ttlMs" in modern and "ttl" in legacy and "ttl" not in modern and "ttlMs" not in legacy


def test_an_ended_task_was_last_updated_when_it_ended() -> None:
    ended = task(view("completed", completed_at="2026-12-06T10:05:00Z"), modern=True)
    assert ended["createdAt"] == "2026-12-06T10:00:00Z" and ended["lastUpdatedAt"] == "2026-12-06T10:05:00Z"


def test_input_requests_are_forms_keyed_by_opencodes_request_ids() -> None:
    pending = [
        PendingRequest(id="per_a", kind="permission", description="Write outside"),
        PendingRequest(
            id="que_b",
            kind="question",
            description="Which?",
            questions=[Question(question="Which?", options=["x", "y"])],
        ),
    ]
    result = CallToolResult(content=[])
    shown = detailed(view("waiting_for_input", pending=pending), result)
    assert set(shown["inputRequests"]) == {"per_a", "que_b"}
    assert shown["inputRequests"]["que_b"]["params"]["requestedSchema"]["properties"]["answer_1"]["enum"] == ["x", "y"]
    assert "Write outside" in shown["statusMessage"]


def test_a_failed_task_keeps_the_tool_result_in_the_error() -> None:
    result = CallToolResult(content=[TextContent(type="text", text="{}")], structured_content={"status": "failed"})
    shown = detailed(view("failed", error="bad api key (HTTP 401 from the model provider)"), result)
    assert shown["error"]["code"] == -32603 and shown["error"]["message"].startswith("bad api key")
    assert shown["error"]["data"]["structuredContent"] == {"status": "failed"}
