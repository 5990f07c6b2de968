"""Tasks belong to the identity that started them.

The owner's name is stored in the OpenCode session's metadata (`owner`), so every gateway
replica and every restart agrees on it. A caller sees its own tasks; an admin sees all;
tasks without an owner (started before ownership existed, or by callers nobody asked
for a name) belong to `default`, the identity of MCP_BEARER_TOKEN. Another caller's task
is reported exactly like a task that does not exist, so ids cannot be probed.

The tool layer names the caller for the duration of one tool call (`acting_as`); the
task service asks `may_see` wherever it reads a session. Calls made outside any tool
(background work) act for nobody in particular and see everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from ..opencode import Session

SHARED_OWNER = "default"


@dataclass(frozen=True)
class Caller:
    name: str
    admin: bool = False


_current: ContextVar[Caller | None] = ContextVar("task_caller", default=None)


@contextmanager
def acting_as(caller: Caller | None) -> Iterator[None]:
    """`None`: background work inside a caller's call (it acts for nobody and sees everything)."""
    token = _current.set(caller)
    try:
        yield
    finally:
        _current.reset(token)


def current_caller() -> Caller | None:
    return _current.get()


def owner_to_record() -> str | None:
    """The owner a new task gets: the caller's name (none for the shared `default`)."""
    caller = _current.get()
    return caller.name if caller is not None and caller.name != SHARED_OWNER else None


def owner_of(session: Session) -> str:
    owner = session.metadata.get("owner")
    return owner if isinstance(owner, str) and owner else SHARED_OWNER


def may_see(session: Session, caller: Caller | None = None) -> bool:
    caller = caller or _current.get()
    return caller is None or caller.admin or owner_of(session) == caller.name
