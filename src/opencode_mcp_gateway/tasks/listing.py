"""`list_tasks`: the caller's tasks, newest first, a page at a time.

One entry per task session (a follow-up continues its session, so an entry names the
session's newest task). Sessions come from OpenCode's cross-directory listing; only
those this gateway created (metadata `createdBy`) and the caller may see are listed.
Pages are ordered by session creation, which never changes, so a cursor stays valid
while tasks run and new ones start.

A stopped sandbox's OpenCode cannot be asked, and waking one to list it would start an
OpenCode: its tasks are listed as they were when it stopped (`KeptTask`, kept by the
sandbox manager), which is what they still are, since nothing in a stopped sandbox runs.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
from pydantic import BaseModel, Field

from ..opencode import Session
from .errors import TaskError
from .ids import TaskId
from .ownership import may_see
from .permissions import CREATED_BY
from .views import TaskStatus, TaskView

MAX_SCANNED = 200  # task states read for one page; a status filter may need several calls
READ_CONCURRENCY = 8


class WorkspaceRef(BaseModel):
    repository: str
    branch: str | None = None


class TaskSummary(BaseModel):
    task_id: str = Field(description="the session's newest task; pass it to get_task_status and the other tools")
    title: str | None = None
    status: TaskStatus
    created_at: str | None = Field(None, description="when the task session was created (ISO 8601, UTC)")
    updated_at: str | None = Field(None, description="its last activity")
    workspace: WorkspaceRef | None = Field(None, description="the repository and branch, for a workspace task")
    read_only: bool = Field(False, description="the task ran read-only (read_only): it could not change files")


class KeptTask(BaseModel):
    """A task of a stopped sandbox as the listing showed it when the sandbox stopped."""

    session: Session
    summary: TaskSummary


class TaskList(BaseModel):
    tasks: list[TaskSummary]
    next_cursor: str | None = Field(None, description="pass as cursor for the next page; absent on the last page")


def _iso(ms: Any) -> str | None:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z") if ms else None


def _key(session: Session) -> tuple[int, str]:
    return session.time.created, session.id


def encode_cursor(key: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}:{key[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, session_id = text.split(":", 1)
        return int(created), session_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise TaskError("cursor is not one list_tasks returned: pass next_cursor unchanged, or leave it out") from None


def _workspace(session: Session) -> WorkspaceRef | None:
    found = session.metadata.get("workspace")
    if isinstance(found, dict) and isinstance(found.get("repository"), str):
        return WorkspaceRef(repository=found["repository"], branch=found.get("branch"))
    return None


class Tasks(Protocol):
    """Where the tasks are: every worker's sessions (with the worker's name), and their states."""

    async def all_sessions(self) -> list[tuple[str, Session]]: ...

    async def kept_tasks(self) -> list[KeptTask]:
        """The tasks of the stopped sandboxes the caller may enter."""

    async def view(self, tid: TaskId, *, with_files: bool = True) -> TaskView: ...


class TaskLister:
    def __init__(self, service: Tasks) -> None:
        self.service = service

    async def page(self, *, status: str | None, limit: int, cursor: str | None) -> TaskList:
        after = decode_cursor(cursor) if cursor else None
        found = await self.service.all_sessions()
        worker = {s.id: name for name, s in found}
        kept = {k.session.id: k for k in await self.service.kept_tasks() if k.session.id not in worker}
        every = [s for _, s in found] + [k.session for k in kept.values()]
        sessions = [s for s in every if s.metadata.get("createdBy") == CREATED_BY and may_see(s)]
        sessions.sort(key=_key, reverse=True)
        if after is not None:
            sessions = [s for s in sessions if _key(s) < after]
        tasks: list[TaskSummary] = []
        examined, position = 0, None
        while examined < len(sessions) and len(tasks) < limit and examined < MAX_SCANNED:
            size = READ_CONCURRENCY if status else min(READ_CONCURRENCY, limit - len(tasks))
            batch = sessions[examined : examined + size]
            for session, summary in zip(batch, await self._summaries(batch, worker, kept), strict=True):
                examined += 1
                position = _key(session)
                if status is None or summary.status == status:
                    tasks.append(summary)
                    if len(tasks) == limit:
                        break
        more = examined < len(sessions) and position is not None
        return TaskList(tasks=tasks, next_cursor=encode_cursor(position) if more and position is not None else None)

    async def keep(self) -> list[KeptTask]:
        """The tasks of `service` (one sandbox's, about to stop) as a listing shows them."""
        found = await self.service.all_sessions()
        sessions = [s for _, s in found if s.metadata.get("createdBy") == CREATED_BY]
        worker = {s.id: name for name, s in found}
        summaries: list[TaskSummary] = []
        for start in range(0, len(sessions), READ_CONCURRENCY):
            summaries += await self._summaries(sessions[start : start + READ_CONCURRENCY], worker, {})
        return [KeptTask(session=s, summary=summary) for s, summary in zip(sessions, summaries, strict=True)]

    async def _summaries(
        self, sessions: list[Session], worker: dict[str, str], kept: dict[str, KeptTask]
    ) -> list[TaskSummary]:
        found: list[TaskSummary | None] = [None] * len(sessions)

        async def read(i: int) -> None:
            session = sessions[i]
            known = kept.get(session.id)
            found[i] = known.summary if known is not None else await self._summary(session, worker[session.id])

        async with anyio.create_task_group() as tg:
            for i in range(len(sessions)):
                tg.start_soon(read, i)
        return [f for f in found if f is not None]

    async def _summary(self, session: Session, worker: str) -> TaskSummary:
        bare = TaskId(session.id, None, worker)
        try:
            view = await self.service.view(bare, with_files=False)
            task_id, status, read_only = view.task_id, view.status, view.read_only
        except TaskError:  # created a moment ago: its prompt is not stored yet
            task_id, status, read_only = str(bare), "running", False
        return TaskSummary(
            task_id=task_id,
            title=session.title,
            status=status,
            created_at=_iso(session.time.created),
            updated_at=_iso(session.time.updated),
            workspace=_workspace(session),
            read_only=read_only,
        )
