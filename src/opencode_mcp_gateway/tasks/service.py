"""One worker's task operations, the façade the pool calls: each job lives in its own module.

* `submitter`: check a request, make or continue the session, send the prompt;
* `reader`: resolve a task id once, derive the state, assemble the view;
* `waiter`: follow the events until the task ends or needs input;
* `control`: abort, and answer permissions and questions;
* `pages`: the conversation and the diff, bounded;
* `sessions` and `session_errors`: what is remembered about sessions.

Every operation takes a parsed `TaskId` (the tools parse the caller's string once).
"""

from __future__ import annotations

from typing import Protocol

from ..config import Settings
from ..opencode import EventHub, OpenCodeClient
from ..workspaces import Workspaces
from .broker import PermissionBroker
from .catalog import Catalog
from .control import TaskControl
from .ids import TaskId
from .pages import TaskPages
from .reader import TaskReader
from .session_errors import SessionErrorLog
from .sessions import SessionStore
from .submitter import TaskRequest, TaskSubmitter
from .tracker import TaskTracker
from .views import AbortView, DiffView, MessagesView, PendingRequest, RespondView, TaskView
from .waiter import Asker, Reporter, TaskWaiter


class TaskOperations(Protocol):
    """What the tools can do with tasks: one worker's service and the pool both offer it."""

    async def submit(self, request: TaskRequest) -> TaskId: ...

    async def view(self, tid: TaskId, *, with_files: bool = True) -> TaskView: ...

    async def wait(
        self, tid: TaskId, timeout: float, *, report: Reporter | None = None, ask: Asker | None = None
    ) -> TaskView: ...

    async def messages(self, tid: TaskId, *, limit: int, offset: int) -> MessagesView: ...

    async def diff(self, tid: TaskId, *, path: str | None = None) -> DiffView: ...

    async def abort(self, tid: TaskId) -> AbortView: ...

    async def respond(
        self, tid: TaskId, request_id: str, decision: str | None, answers: list[list[str]] | None, message: str | None
    ) -> RespondView: ...

    async def answer(
        self, tid: TaskId, request: PendingRequest, decision: str, answers: list[list[str]] | None
    ) -> None: ...


class TaskService:
    def __init__(
        self,
        settings: Settings,
        client: OpenCodeClient,
        hub: EventHub,
        broker: PermissionBroker,
        catalog: Catalog,
        tracker: TaskTracker | None = None,
        workspaces: Workspaces | None = None,
        home: str | None = None,  # a sandbox's own workspace (tasks without a directory run there)
    ) -> None:
        self.catalog = catalog
        self.workspaces = workspaces or Workspaces(settings, client)
        self.shutting_down = False
        sessions = SessionStore(client)
        self.session_errors = SessionErrorLog(hub)
        self._submitter = TaskSubmitter(settings, client, catalog, sessions, self.workspaces, tracker, home)
        self._reader = TaskReader(settings, client, sessions, self.session_errors, broker, self.workspaces)
        self._control = TaskControl(client, broker, self._reader)
        self._waiter = TaskWaiter(settings, hub, self._reader, self._control.answer)
        self._pages = TaskPages(settings, self._reader)

    async def submit(self, request: TaskRequest) -> TaskId:
        return await self._submitter.submit(request)

    async def view(self, tid: TaskId, *, with_files: bool = True) -> TaskView:
        return await self._reader.view(tid, with_files=with_files)

    async def wait(
        self, tid: TaskId, timeout: float, *, report: Reporter | None = None, ask: Asker | None = None
    ) -> TaskView:
        return await self._waiter.wait(tid, timeout, report=report, ask=ask)

    async def messages(self, tid: TaskId, *, limit: int, offset: int) -> MessagesView:
        return await self._pages.messages(tid, limit=limit, offset=offset)

    async def diff(self, tid: TaskId, *, path: str | None = None) -> DiffView:
        return await self._pages.diff(tid, path=path)

    async def abort(self, tid: TaskId) -> AbortView:
        return await self._control.abort(tid, self._waiter)

    async def respond(
        self, tid: TaskId, request_id: str, decision: str | None, answers: list[list[str]] | None, message: str | None
    ) -> RespondView:
        return await self._control.respond(tid, request_id, decision, answers, message)

    async def answer(
        self, tid: TaskId, request: PendingRequest, decision: str, answers: list[list[str]] | None
    ) -> None:
        """Answer a request just read from the task's view (no checks, no second read)."""
        await self._control.answer(tid, request, decision, answers)
