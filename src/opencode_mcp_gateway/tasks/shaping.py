"""How a caller shapes one turn: read-only, a JSON answer (output_schema), attachments.

What OpenCode is sent: a read-only turn switches off, for that turn only, every tool that
can change the workspace (prompt `tools`, which OpenCode stores on the turn's user
message); an output_schema becomes the prompt's `format` (json_schema); attachments become
parts (attachments.py).

Read-only means no shell at all, not a restricted one: OpenCode's bash runs as OpenCode's
own user with its rights, and nothing in OpenCode confines one command to reading, so a
shell (`echo x > f`, `git commit`, `sed -i`) can always write. Reading goes through the
read, grep, glob and list tools. A call to a switched-off tool becomes OpenCode's `invalid`
tool (shown as a refused call) and the turn goes on. Subagents (`task`) are off too: they
run with their own tools.

What is read back: a turn's own facts come from OpenCode's records, so any replica reads
the same. A read-only turn says so on its user message (`tools`). A turn sent with an
output format cannot: OpenCode 1.18.33 cannot return that user message at all (see
opencode/_unreadable.py). For those turns the gateway records what it needs later in the
session's metadata under `shaping`, keyed by the turn's message id: the schema (to check
the answer), read_only, the attachments' names and the start of the prompt (to show in
get_task_messages). The newest MAX_RECORDS are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..opencode import Message, Part, Session
from . import attachments, structured
from .attachments import Attachment, AttachmentInput
from .errors import TaskError

KEY = "shaping"  # the session metadata key
MAX_RECORDS = 20
PROMPT_KEPT = 2_000  # characters of a recorded turn's prompt, for get_task_messages

# Tools that only read (or talk): everything else OpenCode offers is off in a read-only turn.
READING_TOOLS = frozenset(
    {"read", "glob", "grep", "list", "todoread", "todowrite", "webfetch", "websearch", "codesearch", "skill", "lsp"}
    | {"question", "invalid"}
)
# Off whatever OpenCode lists: the tools that write, run commands or start subagents.
WRITING_TOOLS = ("bash", "edit", "write", "patch", "apply_patch", "multiedit", "task")


@dataclass(frozen=True)
class Shape:
    """A turn's shape, checked (the task layer's form of the caller's arguments)."""

    read_only: bool = False
    output_schema: dict[str, Any] | None = None
    attachments: tuple[Attachment, ...] = ()

    def output_format(self) -> dict[str, Any] | None:
        if self.output_schema is None:
            return None
        return {"type": "json_schema", "schema": self.output_schema, "retryCount": structured.RETRIES}

    def record(self, prompt: str) -> dict[str, Any] | None:
        """What the session's metadata keeps for this turn (only a turn with a schema needs it)."""
        if self.output_schema is None:
            return None
        return {
            "schema": self.output_schema,
            "readOnly": self.read_only,
            "attachments": [a.summary() for a in self.attachments],
            "prompt": prompt[:PROMPT_KEPT],
        }


def check(
    read_only: bool,
    output_schema: Any,
    given: Sequence[AttachmentInput],
    *,
    push: bool,
    max_bytes: int,
    max_count: int,
) -> Shape:
    """The caller's shaping arguments, checked (TaskError saying what to fix)."""
    if read_only and push:
        raise TaskError("a read-only task changes nothing, so it has nothing to push: leave push out")
    schema = structured.check_schema(output_schema) if output_schema is not None else None
    return Shape(read_only, schema, attachments.decode(given, max_bytes=max_bytes, max_count=max_count))


def tool_switches(offered: list[str]) -> dict[str, bool]:
    """OpenCode's per-turn `tools` for a read-only turn: off for every tool that is not a reading one."""
    off = set(WRITING_TOOLS) | {t for t in offered if t not in READING_TOOLS}
    return dict.fromkeys(sorted(off), False)


def with_record(metadata: dict[str, Any], message_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """The session's metadata with this turn's record added (the oldest dropped past MAX_RECORDS)."""
    records = dict(_records(metadata))
    records[message_id] = record
    kept = dict(sorted(records.items())[-MAX_RECORDS:])
    return {**metadata, KEY: kept}


def _records(metadata: dict[str, Any]) -> dict[str, Any]:
    found = metadata.get(KEY)
    return found if isinstance(found, dict) else {}


def sent_with_format(session: Session) -> list[str]:
    """The message ids of the session's turns sent with an output format (unreadable in OpenCode)."""
    return list(_records(session.metadata))


@dataclass
class TurnFacts:
    """What a turn was asked to be, as read back."""

    read_only: bool = False
    output_schema: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    prompt: str | None = None  # only for a turn whose user message OpenCode cannot return


def facts(session: Session, user: Message) -> TurnFacts:
    record = _records(session.metadata).get(user.info.id)
    if isinstance(record, dict):
        schema = record.get("schema")
        return TurnFacts(
            read_only=bool(record.get("readOnly")),
            output_schema=schema if isinstance(schema, dict) else None,
            attachments=[a for a in record.get("attachments") or [] if isinstance(a, dict)],
            prompt=str(record.get("prompt") or "") if user.info.unreadable else None,
        )
    return TurnFacts(read_only=is_read_only(user.info.tools), attachments=attachments.shown(user.parts))


def has_record(session: Session, message_id: str) -> bool:
    return message_id in _records(session.metadata)


def is_read_only(tools: dict[str, bool] | None) -> bool:
    """A turn whose tool switches have every writing tool off."""
    return bool(tools) and all(tools.get(t) is False for t in WRITING_TOOLS)  # type: ignore[union-attr]


def restored(session: Session, message: Message) -> Message:
    """A stand-in for a user message OpenCode cannot return, given back the prompt and the
    attachments recorded for its turn (what get_task_messages shows of it)."""
    if not message.info.unreadable:
        return message
    found = facts(session, message)
    text = found.prompt or "(the prompt of a turn sent with output_schema is not readable from OpenCode 1.18.33)"
    marked = [Part(type="text", text="", synthetic=True, metadata={attachments.MARK: a}) for a in found.attachments]
    return message.model_copy(update={"parts": [Part(type="text", text=text), *marked]})
