"""Asking the MCP client about a pending permission or question (elicitation), fail closed.

A declined, cancelled, failed or malformed answer becomes a rejection: OpenCode never
gets a permission nobody granted.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field, create_model

from ..tasks import Asker
from ..tasks.views import PendingRequest

log = logging.getLogger(__name__)


class PermissionAnswer(BaseModel):
    decision: Literal["once", "always", "reject"] = Field(
        description="once: allow this time; always: allow this kind from now on; reject: refuse"
    )


def question_model(request: PendingRequest) -> type[BaseModel]:
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


def make_asker(ctx: Context) -> Asker | None:
    """An Asker using elicitation, or None when the client did not declare the capability."""
    caps = ctx.client_capabilities
    if caps is None or caps.elicitation is None:
        return None

    async def ask(request: PendingRequest) -> tuple[str, list[list[str]] | None] | None:
        try:
            if request.kind == "permission":
                result = await ctx.elicit(request.description, PermissionAnswer)
                if result.action == "accept":
                    return result.data.decision, None
                return None
            schema = question_model(request)
            result_q = await ctx.elicit(request.description, schema)
            if result_q.action != "accept":
                return None
            data = result_q.data.model_dump()
            answers = []
            for n, q in enumerate(request.questions, start=1):
                raw = str(data[f"answer_{n}"])
                answers.append([a.strip() for a in raw.split(",") if a.strip()] if q.multiple else [raw])
            return "answer", answers
        except Exception as exc:  # malformed answer, client error: fail closed
            log.info("elicitation for %s failed (%s); rejecting", request.id, exc)
            return None

    return ask
