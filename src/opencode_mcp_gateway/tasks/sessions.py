"""The sessions behind task ids, as far as this caller may see them.

A session's record (directory, title, metadata: owner, budget, workspace) changes only
when the gateway itself changes it, so it is read from OpenCode once and kept; every
change the gateway makes goes through `remember`.
"""

from __future__ import annotations

from ..opencode import OpenCodeClient, OpenCodeNotFound, Session
from ..primitives import LRU
from .errors import TaskError
from .ownership import may_see


class SessionStore:
    def __init__(self, client: OpenCodeClient, size: int = 5000) -> None:
        self._client = client
        self._known: LRU[str, Session] = LRU(size)

    async def get(self, session_id: str) -> Session:
        """The task's session; another caller's session is reported exactly like a missing one."""
        unknown = TaskError(f"unknown task_id: OpenCode has no session {session_id} (deleted, or another OpenCode)")
        session = self._known.get(session_id)
        if session is None:
            try:
                session = await self._client.get_session(session_id)
            except OpenCodeNotFound:
                raise unknown from None
            self.remember(session)
        if not may_see(session):
            raise unknown
        return session

    async def refresh(self, session_id: str) -> Session:
        """Read again: another replica changed the record (a follow-up's shaping record)."""
        self._known.pop(session_id, None)
        return await self.get(session_id)

    def remember(self, session: Session) -> None:
        self._known[session.id] = session
