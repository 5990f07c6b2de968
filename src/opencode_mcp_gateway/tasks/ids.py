"""Task ids: `[<worker>:]<session id>.<user message id>`, the ids OpenCode's own.

The gateway picks the user message id itself (in OpenCode's ascending format) before it
submits the prompt, so the task id is known up front and resolvable by any gateway
process configured with the same workers: no gateway memory is needed to answer for it.

The worker prefix names the OpenCode worker holding the session (`w1:ses_….msg_…`).
Worker `w0` has none, so ids issued before the worker pool existed (and every id of a
gateway with one OpenCode) keep their form and mean `w0`; `w0:ses_…` is accepted too.
OpenCode ids start with `ses_`/`msg_` and hold no `:`, so the prefix cannot be mistaken
for part of them. The name is only looked up among the configured workers, never used
as an address.

With sandboxes (fleet/sandboxes/) the prefix names a sandbox instead: `c-` (a caller's) or
`t-` (a task's) and hex digits, a shape no `w<n>` can take; the name holds no identity
and no secret (fleet/sandboxes/keys.py).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from typing import NamedTuple

from .errors import TaskError

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID = r"[A-Za-z0-9]{8,64}"
SANDBOX_NAME = r"c-[0-9a-f]{24}|t-[0-9a-f]{26}"  # a caller's or a task's sandbox (fleet/sandboxes/keys.py)
_WORKER = rf"w(?:0|[1-9][0-9]{{0,3}})|{SANDBOX_NAME}"
_TASK_RE = re.compile(rf"^(?:({_WORKER}):)?(ses_{_ID})(?:\.(msg_{_ID}))?$")
FIRST_WORKER = "w0"
_lock = threading.Lock()
_last = [0, 0]  # last millisecond, counter within it


class TaskId(NamedTuple):
    session_id: str
    message_id: str | None  # None: "the newest task of this session"
    worker: str = FIRST_WORKER  # the OpenCode worker (or sandbox) holding the session

    def __str__(self) -> str:
        bare = f"{self.session_id}.{self.message_id}" if self.message_id else self.session_id
        return bare if self.worker == FIRST_WORKER else f"{self.worker}:{bare}"


class InvalidTaskId(TaskError):
    """A string that is not a task id of this gateway."""


def parse_task_id(raw: str) -> TaskId:
    text = (raw or "").strip()
    match = _TASK_RE.match(text)
    if match:
        return TaskId(match.group(2), match.group(3), match.group(1) or FIRST_WORKER)
    raise InvalidTaskId(
        f"task_id {raw!r} is not a task id of this gateway: use the task_id returned by "
        "run_coding_task or run_coding_task_async (it looks like ses_….msg_…, or w1:ses_….msg_… on another worker)"
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


def seconds_since_made(message_id: str) -> float | None:
    """How long ago a message id of this form was made (ours and OpenCode's share it: the
    first 12 hex digits are the millisecond times 0x1000 plus a counter); None if it is not one."""
    try:
        stamp = int(message_id[4:16], 16)
    except ValueError:
        return None
    now = (int(time.time() * 1000) * 0x1000) & ((1 << 48) - 1)
    return ((now - stamp) % (1 << 48) >> 12) / 1000
