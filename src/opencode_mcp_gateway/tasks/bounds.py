"""Rendering messages and diffs for tool results, within a byte budget (pure logic).

Every cut is said in the result: which field, how much, and which call gets the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from ..opencode import Message, ToolState
from .attachments import shown
from .views import AttachmentInfo, FileChange, FileDiff, ToolCall
from .views import Message as MessageView

Item = TypeVar("Item", bound=BaseModel)

FIELD_LIMIT = 4_000  # one tool input or output
TEXT_LIMIT = 20_000  # one message's text


def clip(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit] + f"\n…[cut {len(text) - limit} more characters]", True


def _size(items: list[Item]) -> int:
    return len(json.dumps([i.model_dump() for i in items], ensure_ascii=False, default=str))


@dataclass
class Page(Generic[Item]):
    items: list[Item]
    total: int
    truncated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        return " ".join(self.notes) or None


def task_conversation(messages: list[Message], user_id: str) -> list[Message]:
    """The session's messages up to and including this task's turn (later turns left out)."""
    keep = []
    for message in messages:
        i = message.info
        anchor = i.id if i.role == "user" else (i.parentID or "")
        if anchor <= user_id:
            keep.append(message)
    return keep


def render_message(message: Message) -> tuple[MessageView, bool]:
    i = message.info
    cut = False
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in message.parts:
        if part.type == "text" and part.text and not part.synthetic:
            texts.append(part.text)
        elif part.type == "tool" and part.tool == INVALID_TOOL:
            calls.append(refused_call(part.state or ToolState()))
        elif part.type == "tool":
            state = part.state or ToolState()
            raw_input = json.dumps(state.input or {}, ensure_ascii=False)
            call_input, c1 = clip(raw_input, FIELD_LIMIT // 2)
            output, c2 = clip(state.output or "", FIELD_LIMIT)
            cut = cut or c1 or c2
            calls.append(
                ToolCall(
                    tool=part.tool,
                    status=state.status,
                    title=state.title,
                    input={"truncated_json": call_input} if c1 else _as_object(state.input),
                    input_truncated=c1,
                    output=output or None,
                    error=clip(state.error, FIELD_LIMIT)[0] if state.error else None,
                )
            )
    text, c3 = clip("\n".join(texts).strip(), TEXT_LIMIT)
    rendered = MessageView(
        id=i.id,
        role=i.role,
        text=text,
        tool_calls=calls,
        created_at=i.time.created or None,
        finish=i.finish if i.role == "assistant" else None,
        error=((i.error.get("data") or {}).get("message") or i.error.get("name")) if i.error else None,
        attachments=[AttachmentInfo.model_validate(a) for a in shown(message.parts)] if i.role == "user" else [],
    )
    return rendered, cut or c3


def page_messages(messages: list[Message], *, limit: int, offset: int, budget: int, task_id: str) -> Page[MessageView]:
    """The newest `limit` messages after skipping the newest `offset`, oldest first."""
    total = len(messages)
    end = max(total - offset, 0)
    window = messages[max(end - limit, 0) : end]
    rendered = []
    any_cut = False
    for message in window:
        item, cut = render_message(message)
        rendered.append(item)
        any_cut = any_cut or cut
    page = Page(items=list(rendered), total=total)
    while len(page.items) > 1 and _size(page.items) > budget:
        page.items.pop(0)
    dropped = len(rendered) - len(page.items)
    if _size(page.items) > budget and page.items:  # one huge message: cut its fields harder
        only = page.items[0]
        only.text = clip(only.text, budget // 2)[0]
        for call in only.tool_calls:
            call.output = clip(call.output or "", budget // (4 * len(only.tool_calls)))[0]
        any_cut = True
    older = end - len(window) + dropped
    if older > 0:
        page.truncated = True
        page.notes.append(
            f"{older} older message(s) not shown; call get_task_messages with task_id={task_id} "
            f"and offset={offset + len(page.items)} to read them."
        )
    if any_cut:
        page.truncated = True
        page.notes.append("Long texts and tool outputs were cut where marked '…[cut N more characters]'.")
    return page


def file_summary(entry: dict[str, Any]) -> FileChange:
    """One entry of OpenCode's diff as callers see it (OpenCode calls the path `file`)."""
    return FileChange(
        path=str(entry.get("file") or entry.get("path") or ""),
        status=entry.get("status") or "modified",
        additions=int(entry.get("additions") or 0),
        deletions=int(entry.get("deletions") or 0),
    )


def page_diff(files: list[dict[str, Any]], *, budget: int, task_id: str) -> Page[FileDiff]:
    items = []
    cut_files = []
    used = 0
    per_file = max(budget // max(len(files), 1), 2_000)
    for entry in files:
        patch = str(entry.get("patch") or "")
        room = max(min(per_file, budget - used), 0)
        shown, cut = clip(patch, room) if room else ("", bool(patch))
        if cut:
            cut_files.append(str(entry.get("file")))
        item = FileDiff(**file_summary(entry).model_dump(), patch=shown, patch_truncated=cut)
        used += _size([item])
        items.append(item)
    page = Page(items=items, total=len(files), truncated=bool(cut_files))
    if cut_files:
        names = ", ".join(cut_files[:5]) + ("…" if len(cut_files) > 5 else "")
        page.notes.append(
            f"Patches cut to fit {budget} bytes: {names}. Call get_task_diff with task_id={task_id} "
            "and path=<file> to get one file's whole patch."
        )
    return page


INVALID_TOOL = "invalid"  # OpenCode's stand-in for a call to a tool the turn does not have


def refused_call(state: ToolState) -> ToolCall:
    """A call to a tool that was switched off (read_only) or does not exist: shown as the
    tool the model asked for, refused, with OpenCode's reason."""
    asked = _as_object(state.input)
    return ToolCall(
        tool=str(asked.get("tool") or INVALID_TOOL),
        status="refused",
        title=state.title,
        error=clip(str(asked.get("error") or state.output or ""), FIELD_LIMIT)[0] or None,
    )


def _as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
