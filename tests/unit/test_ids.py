from __future__ import annotations

import pytest

from opencode_mcp_gateway.tasks.ids import InvalidTaskId, TaskId, new_message_id, parse_task_id, seconds_since_made


def test_message_ids_ascend_like_opencodes() -> None:
    ids = [new_message_id() for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(i.startswith("msg_") and len(i) == 30 for i in ids)
    # later than an id OpenCode made a moment ago (same encoding: ms * 0x1000 + counter)
    assert ids[0] > "msg_20bce86e9000ATNk7Yiu7ZNmF8"


def test_task_id_round_trip() -> None:
    tid = TaskId("ses_df4317921ffe8FoZ9xUaThiKug", "msg_20bce86e9000ATNk7Yiu7ZNmF8")
    assert parse_task_id(str(tid)) == tid
    assert parse_task_id(" ses_df4317921ffe8FoZ9xUaThiKug ") == TaskId("ses_df4317921ffe8FoZ9xUaThiKug", None)


@pytest.mark.parametrize("raw", ["", "nope", "ses_x.msg_y", "ses_abc/../x", "msg_20bce86e9000ATNk7Yiu7ZNmF8"])
def test_malformed_task_ids_are_refused_with_a_hint(raw: str) -> None:
    with pytest.raises(InvalidTaskId, match="run_coding_task"):
        parse_task_id(raw)


def test_the_age_of_a_message_id_is_read_from_its_stamp() -> None:
    age = seconds_since_made(new_message_id())
    assert age is not None and 0 <= age < 1
    assert (seconds_since_made("msg_000000000000abcdefghijklmn") or 0) > 3600  # long ago
    assert seconds_since_made("msg_not-hex-at-all") is None
