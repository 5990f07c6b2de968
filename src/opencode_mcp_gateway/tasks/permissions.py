"""Permission and question prompts: the gateway-wide policy and the input timeout.

OpenCode stops mid-task to ask for a permission (a path outside the project, a `.env`
read, …) or, through its `question` tool, for an answer. Headless, nobody would ever
answer, so PERMISSION_POLICY decides:

* allow: every session gets rules that allow everything and remove the question tool.
* deny:  OpenCode's own rules stay; whatever it asks is rejected with a message, so the
         agent is told why and carries on. The question tool is removed.
* ask:   requests are surfaced (status `waiting_for_input`), answered with
         `respond_to_task` or by MCP elicitation during a blocking call.

In every mode a request left open for INPUT_TIMEOUT_SECONDS is rejected, and the task
status says so (broker.py applies the policy and the timeout). Under allow and deny the
gateway is the one who answers, so a task with a request open is still `running` for its
caller (the answer may be milliseconds away, or, when OpenCode failed to take it, a second
later).

A session records the policy it was created under (session metadata), and a broker acts
only on sessions of its own policy: replicas with one policy share the work, while
gateways with different policies on one OpenCode never interfere.
"""

from __future__ import annotations

from typing import Any

import anyio

from ..opencode import OpenCodeClient
from .views import PendingRequest, Question

CREATED_BY = "opencode-mcp-gateway"
DENY_MESSAGE = "Not allowed by the gateway's policy (PERMISSION_POLICY=deny). Continue without this action."
REJECT_MESSAGE = "The user rejected this request. Continue without it."
PERMISSION_REPLIES = ("once", "always", "reject")

_ALLOW_ALL = {"permission": "*", "pattern": "*", "action": "allow"}
_NO_QUESTIONS = {"permission": "question", "pattern": "*", "action": "deny"}


def session_metadata(
    policy: str,
    *,
    owner: str | None = None,
    budget: dict[str, Any] | None = None,
    workspace: dict[str, Any] | None = None,
    notify: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What every replica reads back from the session: who made it and under which policy,
    and each feature's own record (the caller who owns it, its budget, its workspace, where
    its webhooks go)."""
    metadata: dict[str, Any] = {"createdBy": CREATED_BY, "permissionPolicy": policy}
    if owner:
        metadata["owner"] = owner
    if budget:
        metadata["budget"] = budget
    if workspace is not None:
        metadata["workspace"] = workspace
    if notify is not None:
        metadata["notify"] = notify
    return metadata


def is_ours(metadata: dict[str, Any], policy: str) -> bool:
    """A gateway session of this policy, whatever other keys features add to its metadata."""
    return metadata.get("createdBy") == CREATED_BY and metadata.get("permissionPolicy") == policy


def session_rules(policy: str) -> list[dict[str, str]]:
    if policy == "allow":
        return [_ALLOW_ALL, _NO_QUESTIONS]
    if policy == "deny":
        return [_NO_QUESTIONS]
    return []


def describe_request(raw: dict[str, Any], kind: str) -> PendingRequest:
    """A pending request as callers see it."""
    if kind == "question":
        questions = [
            Question(
                question=q.get("question"),
                header=q.get("header"),
                options=[o.get("label") for o in q.get("options") or []],
                multiple=bool(q.get("multiple")),
            )
            for q in raw.get("questions") or []
        ]
        first = questions[0].question if questions else ""
        return PendingRequest(
            id=str(raw.get("id")),
            kind="question",
            questions=questions,
            description=f"OpenCode asks: {first}",
            how_to_answer="respond_to_task with answers=[[label, ...] per question], or reply='reject'",
        )
    metadata = raw.get("metadata") or {}
    patterns = [str(p) for p in raw.get("patterns") or []]
    command = metadata.get("command") or metadata.get("filepath") or metadata.get("filePath")
    permission = str(raw.get("permission") or "")
    target = command or ", ".join(patterns)
    return PendingRequest(
        id=str(raw.get("id")),
        kind="permission",
        permission=permission,
        patterns=patterns,
        command=command,
        description=f"OpenCode asks permission for {permission}: {target}".strip(": "),
        how_to_answer="respond_to_task with reply='once', 'always' or 'reject'",
    )


async def reply(
    client: OpenCodeClient,
    request_id: str,
    kind: str,
    decision: str,
    *,
    answers: list[list[str]] | None = None,
    message: str | None = None,
) -> None:
    """Answer one request. A rejected permission always carries a message, so the agent
    learns why and carries on (without one OpenCode ends the whole run)."""
    if kind == "question":
        if decision == "reject" or answers is None:
            await client.reject_question(request_id)
        else:
            await client.reply_question(request_id, answers)
        return
    await client.reply_permission(request_id, decision, (message or REJECT_MESSAGE) if decision == "reject" else None)


async def open_requests(client: OpenCodeClient, session_id: str, directory: str | None) -> list[PendingRequest]:
    """The permission and question requests open for one session, as callers see them."""
    async with anyio.create_task_group() as tg:
        found: dict[str, list[dict[str, Any]]] = {}

        async def load(kind: str) -> None:
            fetch = client.permissions if kind == "permission" else client.questions
            found[kind] = await fetch(directory)

        tg.start_soon(load, "permission")
        tg.start_soon(load, "question")
    return [
        describe_request(raw, kind)
        for kind in ("permission", "question")
        for raw in found[kind]
        if raw.get("sessionID") == session_id
    ]
