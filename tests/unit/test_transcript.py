from __future__ import annotations

from typing import Any

from opencode_mcp_gateway.opencode import Message
from opencode_mcp_gateway.tasks.transcript import Transcript

USER = {"id": "msg_1", "role": "user", "sessionID": "ses_1", "time": {"created": 1}}


def message(info: dict[str, Any], *parts: dict[str, Any]) -> Message:
    return Message.model_validate({"info": info, "parts": list(parts)})


def assistant(completed: int | None = None, **more: Any) -> dict[str, Any]:
    return {
        "id": "msg_2",
        "role": "assistant",
        "sessionID": "ses_1",
        "parentID": "msg_1",
        "time": {"created": 2, "completed": completed},
        **more,
    }


def text(part_id: str, words: str) -> dict[str, Any]:
    return {"id": part_id, "messageID": "msg_2", "sessionID": "ses_1", "type": "text", "text": words}


def event(kind: str, **properties: Any) -> dict[str, Any]:
    return {"type": kind, "properties": properties}


def read() -> list[Message]:
    return [message(USER, {"id": "prt_u", "type": "text", "text": "Change calc.py"})]


def test_the_events_of_a_turn_give_the_messages_a_read_would() -> None:
    transcript = Transcript(read())
    transcript.feed(event("message.updated", info=assistant()))
    transcript.feed(event("message.part.updated", part=text("prt_1", "")))
    transcript.feed(event("message.part.updated", part=text("prt_1", "Done.")))  # after its deltas
    transcript.feed(event("message.updated", info=assistant(completed=9, finish="stop", cost=0.5)))
    messages = transcript.messages()
    assert messages is not None
    assert [m.info.id for m in messages] == ["msg_1", "msg_2"]
    assert messages[1].info.time.completed == 9 and messages[1].info.cost == 0.5
    assert [p.text for p in messages[1].parts] == ["Done."]  # one part, as last told
    assert messages[0].parts[0].text == "Change calc.py"  # untouched: as read


def test_removed_messages_and_parts_are_gone() -> None:
    transcript = Transcript([*read(), message(assistant(), text("prt_1", "a"), text("prt_2", "b"))])
    transcript.feed(event("message.part.removed", messageID="msg_2", partID="prt_1"))
    assert [p.text for p in (transcript.messages() or [])[1].parts] == ["b"]
    transcript.feed(event("message.removed", messageID="msg_2"))
    assert [m.info.id for m in transcript.messages() or []] == ["msg_1"]


def test_a_gap_in_the_stream_means_the_messages_must_be_read() -> None:
    transcript = Transcript(read())
    transcript.feed(event("gateway.resync", reason="subscriber fell behind"))
    assert transcript.messages() is None


def test_a_part_of_a_message_never_seen_means_the_messages_must_be_read() -> None:
    transcript = Transcript(read())
    transcript.feed(event("message.part.updated", part=text("prt_1", "Done.")))  # msg_2's info never came
    assert transcript.messages() is None


def test_a_stand_in_for_an_unreadable_message_means_the_messages_must_be_read() -> None:
    transcript = Transcript([message({**USER, "unreadable": True})])
    assert transcript.messages() is None


def test_an_event_shaped_unlike_a_message_means_the_messages_must_be_read() -> None:
    transcript = Transcript(read())
    transcript.feed(event("message.updated", info={"id": "msg_2"}))  # no role
    assert transcript.messages() is None
