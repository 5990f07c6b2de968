"""A session's messages as last read, kept current from the session's events.

A waiting call reads the task once, then follows the session's event stream. OpenCode sends
every change of a message on it (`message.updated` carries the whole info, the final
`message.part.updated` of a part the whole part; deltas only repeat what that one brings),
so when the session goes idle the messages are already known: the waiter derives the
result from them instead of reading them again. That read came when OpenCode is busiest
(it stores the turn's summary and diff right after idle) and took 5-20 ms of the ~20
between the idle event and the client holding its result (docs/design.md, "The cost of a
call").

It is trusted only while nothing can have been missed: a gap in the stream (a reconnect, a
subscriber that fell behind) or an event it cannot place (a part of a message it never
saw) makes it unusable, and the waiter reads instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..opencode import Event, Message

JSON = dict[str, Any]


class _Changed:
    """A message an event touched: its info and parts as the events last told them."""

    def __init__(self, info: JSON, parts: dict[str, JSON]) -> None:
        self.info = info
        self.parts = parts

    def as_message(self) -> Message:
        return Message.model_validate({"info": self.info, "parts": list(self.parts.values())})

    @classmethod
    def of(cls, message: Message) -> _Changed:
        dumped = (p.model_dump() for p in message.parts)
        return cls(message.info.model_dump(), {str(p.get("id", i)): p for i, p in enumerate(dumped)})


class Transcript:
    def __init__(self, messages: list[Message]) -> None:
        # In the order OpenCode lists them; a message stays as read until an event touches it
        # (most of a session's are older turns no event will touch: they are not copied).
        self._messages: dict[str, Message | _Changed] = {m.info.id: m for m in messages}
        # a stand-in for what OpenCode cannot return (_unreadable.py): that session is read
        self.trusted = not any(m.info.unreadable for m in messages)

    def feed(self, event: Event) -> None:
        kind = str(event.get("type", ""))
        props = event.get("properties") or {}
        if kind.startswith("gateway."):  # a reconnect or a gap: events may have been missed
            self.trusted = False
        elif kind == "message.updated":
            info = props.get("info") or {}
            held = self._changed(str(info.get("id")))
            self._messages[str(info.get("id"))] = _Changed(info, held.parts if held else {})
        elif kind == "message.part.updated":
            part = props.get("part") or {}
            held = self._changed(str(part.get("messageID")))
            if held is None:
                self.trusted = False  # a part of a message this never saw
            else:
                held.parts[str(part.get("id"))] = part
        elif kind == "message.removed":
            self._messages.pop(str(props.get("messageID")), None)
        elif kind == "message.part.removed":
            held = self._changed(str(props.get("messageID")))
            if held is not None:
                held.parts.pop(str(props.get("partID")), None)

    def _changed(self, message_id: str) -> _Changed | None:
        held = self._messages.get(message_id)
        if isinstance(held, Message):
            held = self._messages[message_id] = _Changed.of(held)
        return held

    def messages(self) -> list[Message] | None:
        """The messages now, oldest first; None when they must be read instead."""
        if not self.trusted:
            return None
        try:
            return [m if isinstance(m, Message) else m.as_message() for m in self._messages.values()]
        except ValidationError:  # an event shaped unlike a listing's message
            return None
