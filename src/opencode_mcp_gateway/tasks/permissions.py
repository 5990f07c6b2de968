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
status says so. Under allow and deny the gateway is the one who answers, so a task with a
request open is still `running` for its caller (the answer may be milliseconds away, or,
when OpenCode failed to take it, a second later).

A session records the policy it was created under (session metadata), and a broker acts
only on sessions of its own policy: replicas with one policy share the work, while
gateways with different policies on one OpenCode never interfere.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio

from ..opencode import Event, EventHub, OpenCodeClient, OpenCodeError, OpenCodeNotFound, session_id_of
from ..primitives import LRU
from .views import PendingRequest, Question

log = logging.getLogger(__name__)

CREATED_BY = "opencode-mcp-gateway"
DENY_MESSAGE = "Not allowed by the gateway's policy (PERMISSION_POLICY=deny). Continue without this action."
REJECT_MESSAGE = "The user rejected this request. Continue without it."
PERMISSION_REPLIES = ("once", "always", "reject")
RETRY_SECONDS = 1.0  # between policy answers OpenCode failed to take

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


@dataclass
class _OpenRequest:
    kind: str  # permission or question
    session_id: str
    seen: float  # monotonic time it was first seen
    description: str
    tried: float = 0.0  # monotonic time of the last policy answer sent


class PermissionBroker:
    """Applies the policy and the input timeout to the requests of gateway sessions."""

    def __init__(self, client: OpenCodeClient, hub: EventHub, policy: str, input_timeout: float) -> None:
        self._client = client
        self._hub = hub
        self.policy = policy
        self.input_timeout = input_timeout
        self._open: dict[str, _OpenRequest] = {}
        self._ours: LRU[str, bool] = LRU(10_000)
        self._notices: LRU[str, deque[str]] = LRU(5000)
        # Asked in a session OpenCode failed to let us read: asked again at the next tick
        self._unread: LRU[str, tuple[dict[str, Any], str]] = LRU(1000)
        self._last_retry = 0.0
        self._resync_failed = False  # the listing after a gap failed: list again at the next tick

    def answers_itself(self, session_metadata: dict[str, Any]) -> bool:
        """Whether this gateway (or a replica of its policy) answers the session's requests
        without its caller: a session of our allow or deny policy. Its open requests are
        not the caller's to answer, whatever a read catches between asking and answering."""
        return self.policy != "ask" and is_ours(session_metadata, self.policy)

    # -- notices the task status shows --------------------------------------------------
    def notices(self, session_id: str) -> list[str]:
        return list(self._notices.get(session_id, ()))

    def add_notice(self, session_id: str, text: str) -> None:
        notices = self._notices.get(session_id) or deque(maxlen=20)
        notices.append(text)
        self._notices[session_id] = notices

    # -- the background loop --------------------------------------------------------------
    async def run(self) -> None:
        with self._hub.subscribe(None) as sub:
            while True:
                for event in await sub.next_batch(timeout=1.0):
                    await self._on_event(event)
                await self._tick()

    async def _on_event(self, event: Event) -> None:
        kind = event.get("type")
        props = event.get("properties") or {}
        if kind in ("permission.asked", "question.asked"):
            await self._on_asked(props, "permission" if kind == "permission.asked" else "question")
        elif kind in ("permission.replied", "question.replied", "question.rejected"):
            request_id = str(props.get("requestID") or props.get("id"))
            self._open.pop(request_id, None)
            self._unread.pop(request_id, None)
        elif kind == "gateway.resync":
            await self._reconcile()

    async def _on_asked(self, raw: dict[str, Any], kind: str) -> None:
        request_id, session_id = str(raw.get("id")), session_id_of({"properties": raw}) or ""
        if request_id in self._open:
            return
        ours = await self._is_ours(session_id)
        if ours is None:
            self._unread[request_id] = (raw, kind)
            return
        self._unread.pop(request_id, None)
        if not ours:
            return
        description = describe_request(raw, kind).description
        self._open[request_id] = _OpenRequest(kind, session_id, time.monotonic(), description)
        await self._apply_policy(request_id)

    async def _apply_policy(self, request_id: str) -> None:
        request = self._open[request_id]
        request.tried = time.monotonic()
        if self.policy == "allow":
            await self._answer(request_id, request.kind, allow=True)
        elif self.policy == "deny" and await self._answer(request_id, request.kind, allow=False, message=DENY_MESSAGE):
            self.add_notice(request.session_id, f"{request.description} — denied by policy")

    async def _reconcile(self) -> None:
        """After a gap: pick up requests asked while the stream was down."""
        self._resync_failed = False
        try:
            found = [(r, "permission") for r in await self._client.permissions()]
            found += [(r, "question") for r in await self._client.questions()]
        except OpenCodeError:
            self._resync_failed = True
            return
        live = {str(r.get("id")) for r, _ in found}
        for request_id in list(self._open):
            if request_id not in live:
                self._open.pop(request_id)
        for raw, kind in found:
            await self._on_asked(raw, kind)

    async def _tick(self) -> None:
        """Expire what waited too long. When OpenCode failed a read or an answer, go again
        after a second: the listing after a gap, the requests whose session could not be read
        (they may be in any directory, which a listing would not cover), and under allow or
        deny the answers OpenCode did not take (a request still open here was never answered)."""
        now = time.monotonic()
        if now - self._last_retry >= RETRY_SECONDS and (self._resync_failed or self._unread):
            self._last_retry = now
            if self._resync_failed:
                await self._reconcile()
            for raw, kind in list(self._unread.values()):
                await self._on_asked(raw, kind)
        for request_id, request in list(self._open.items()):
            if now - request.seen >= self.input_timeout:
                message = (
                    f"No answer within INPUT_TIMEOUT_SECONDS={self.input_timeout:g}s; the gateway rejected it. "
                    "Continue without this action."
                )
                if await self._answer(request_id, request.kind, allow=False, message=message):
                    self.add_notice(
                        request.session_id,
                        f"{request.kind} request {request_id} got no answer within {self.input_timeout:g}s "
                        "and was rejected",
                    )
            elif self.policy != "ask" and now - request.tried >= RETRY_SECONDS:
                await self._apply_policy(request_id)

    async def _answer(self, request_id: str, kind: str, *, allow: bool, message: str | None = None) -> bool:
        """Whether the request is settled: answered now, or meanwhile by someone else."""
        try:
            await reply(self._client, request_id, kind, "once" if allow else "reject", message=message)
        except OpenCodeNotFound:
            pass  # answered meanwhile
        except OpenCodeError as exc:
            log.warning("could not answer %s %s (trying again): %s", kind, request_id, exc)
            return False
        self._open.pop(request_id, None)
        return True

    async def _is_ours(self, session_id: str) -> bool | None:
        """None: OpenCode failed the read, so nobody knows yet."""
        if not session_id:
            return False
        if session_id not in self._ours:
            try:
                session = await self._client.get_session(session_id)
            except OpenCodeNotFound:
                return False
            except OpenCodeError:
                return None
            self._ours[session_id] = is_ours(session.metadata, self.policy)
        return self._ours[session_id]

    def forget(self, request_id: str) -> None:
        self._open.pop(request_id, None)


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
