"""Task ids: `<session id>.<user message id>`, both OpenCode's own.

The gateway picks the user message id itself (in OpenCode's ascending format) before it
submits the prompt, so the task id is known up front and resolvable by any gateway
process pointed at the same OpenCode: no gateway memory is needed to answer for it.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from typing import NamedTuple

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID = r"[A-Za-z0-9]{8,64}"
_TASK_RE = re.compile(rf"^(ses_{_ID})\.(msg_{_ID})$")
_SESSION_RE = re.compile(rf"^ses_{_ID}$")
_lock = threading.Lock()
_last = [0, 0]  # last millisecond, counter within it


class TaskId(NamedTuple):
    session_id: str
    message_id: str | None  # None: "the newest task of this session"

    def __str__(self) -> str:
        return f"{self.session_id}.{self.message_id}" if self.message_id else self.session_id


class InvalidTaskId(ValueError):
    pass


def parse_task_id(raw: str) -> TaskId:
    text = (raw or "").strip()
    match = _TASK_RE.match(text)
    if match:
        return TaskId(match.group(1), match.group(2))
    if _SESSION_RE.match(text):
        return TaskId(text, None)
    raise InvalidTaskId(
        f"task_id {raw!r} is not a task id of this gateway: use the task_id returned by "
        "run_coding_task or run_coding_task_async (it looks like ses_….msg_…)"
    )


def new_message_id() -> str:
    """An id that sorts after every message OpenCode created before now, as OpenCode's do."""
    with _lock:
        now = int(time.time() * 1000)
        if now == _last[0]:
            _last[1] += 1
        else:
            _last[0], _last[1] = now, 0
        stamp = (now * 0x1000 + _last[1]) & ((1 << 48) - 1)
    return "msg_" + stamp.to_bytes(6, "big").hex() + "".join(secrets.choice(_BASE62) for _ in range(14))
