"""Asking the MCP client about a pending permission or question (elicitation), fail closed.

Two protocol eras:
* up to 2025-11-25 the server sends `elicitation/create` in the middle of the tool call;
* from 2026-07-28 there is no back-channel: the tool call returns an `InputRequiredResult`,
  the client answers and calls again with the answers and our `request_state`, and the
  gateway resumes waiting on the same task.

A declined, cancelled or malformed answer becomes a rejection: OpenCode never gets a
permission nobody granted. A client that cannot be asked at all leaves the request pending
(status `waiting_for_input`, answer with `respond_to_task`) instead of having it rejected.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Literal

from mcp.server.elicitation import render_elicitation_schema
from mcp.server.mcpserver import Context
from mcp.types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult, RequestParamsMeta
from pydantic import BaseModel, Field, ValidationError, create_model

from ..fleet import TaskPool
from ..tasks import Asker, TaskError, TaskId, parse_task_id
from ..tasks.views import PendingRequest, TaskView

log = logging.getLogger(__name__)
MODERN = "2026-07-28"  # the first protocol version without server-initiated requests

Answer = tuple[str, list[list[str]] | None]


class PermissionAnswer(BaseModel):
    decision: Literal["once", "always", "reject"] = Field(
        description="once: allow this time; always: allow this kind from now on; reject: refuse"
    )


def answer_model(request: PendingRequest) -> type[BaseModel]:
    if request.kind == "permission":
        return PermissionAnswer
    fields: dict[str, Any] = {}
    for n, q in enumerate(request.questions, start=1):
        text = q.question or q.header or f"question {n}"
        if q.options and not q.multiple:
            fields[f"answer_{n}"] = (Literal[tuple(q.options)], Field(description=text))
        else:
            hint = f" (choose from: {', '.join(q.options)}; separate several with commas)" if q.options else ""
            fields[f"answer_{n}"] = (str, Field(description=text + hint))
    model: type[BaseModel] = create_model("QuestionAnswers", **fields)
    return model


def to_answer(request: PendingRequest, content: dict[str, Any] | None) -> Answer | None:
    """The decision an accepted answer means; None (reject) when it does not validate."""
    try:
        data = answer_model(request).model_validate(content or {}).model_dump()
    except ValidationError:
        return None
    if request.kind == "permission":
        return str(data["decision"]), None
    answers = []
    for n, q in enumerate(request.questions, start=1):
        raw = str(data[f"answer_{n}"])
        answers.append([a.strip() for a in raw.split(",") if a.strip()] if q.multiple else [raw])
    return "answer", answers


def is_modern(ctx: Context) -> bool:
    return (ctx.protocol_version or "") >= MODERN


def can_elicit(ctx: Context) -> bool:
    caps = ctx.client_capabilities
    return caps is not None and caps.elicitation is not None


def make_asker(ctx: Context) -> Asker | None:
    """An Asker for the mid-call flow (up to 2025-11-25), or None when it cannot be used."""
    if not can_elicit(ctx) or is_modern(ctx):
        return None

    async def ask(request: PendingRequest) -> Answer | None:
        try:
            result = await ctx.elicit(request.description, answer_model(request))
        except Exception as exc:  # malformed answer, client error: fail closed
            log.info("elicitation for %s failed (%s); rejecting", request.id, exc)
            return None
        return to_answer(request, result.data.model_dump()) if result.action == "accept" else None

    return ask


def form_request(request: PendingRequest, meta: RequestParamsMeta | None = None) -> ElicitRequest:
    """The form that asks the client about one pending request."""
    return ElicitRequest(
        params=ElicitRequestFormParams(
            message=request.description,
            requested_schema=render_elicitation_schema(answer_model(request)),
            _meta=meta,
        )
    )


def input_required(view: TaskView) -> InputRequiredResult:
    """The 2026-07-28 way to ask: one form per pending request, the task in the state."""
    keys = {f"request_{n}": request for n, request in enumerate(view.pending)}
    return InputRequiredResult(
        input_requests={key: form_request(request) for key, request in keys.items()},
        request_state=json.dumps({"task_id": view.task_id, "requests": {k: r.id for k, r in keys.items()}}),
    )


async def apply_answers(service: TaskPool, ctx: Context) -> TaskId:
    """A retry after `input_required`: answer each request, return the task to resume."""
    try:
        state = json.loads(ctx.request_state or "")
        tid = parse_task_id(state["task_id"])
        asked: dict[str, str] = dict(state["requests"])
    except (ValueError, KeyError, TypeError):
        raise TaskError("request_state is not one this gateway issued; call run_coding_task afresh") from None
    view = await service.view(tid, with_files=False)
    pending = {p.id: p for p in view.pending}
    # answered meanwhile (respond_to_task, input timeout): nothing left to answer
    still_open = {key: pending[request_id] for key, request_id in asked.items() if request_id in pending}
    await answer_each(service, tid, still_open, ctx.input_responses or {})
    return tid


async def answer_each(
    service: TaskPool, tid: TaskId, asked: Mapping[str, PendingRequest], responses: Mapping[str, Any]
) -> None:
    """Answer each request of `asked` with the client's response under the same key; a
    missing, declined or malformed response rejects it (fail closed)."""
    for key, request in asked.items():
        response = responses.get(key)
        if isinstance(response, Mapping):  # raw JSON (tasks/update) rather than the SDK's parsed answers
            try:
                response = ElicitResult.model_validate(response)
            except ValidationError:
                response = None
        answer = None
        if isinstance(response, ElicitResult) and response.action == "accept":
            answer = to_answer(request, response.content)
        decision, answers = answer or ("reject", None)
        try:  # the request was just read: answered as is, with no second read of the task
            await service.answer(tid, request, decision, answers)
        except TaskError as exc:
            log.info("answer to %s not applied: %s", request.id, exc)
