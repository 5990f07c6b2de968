"""Steering a running task: stop it, or answer what OpenCode asks (a permission or a question)."""

from __future__ import annotations

import logging

from ..observability import metrics
from ..opencode import OpenCodeClient, OpenCodeError, OpenCodeNotFound
from .broker import PermissionBroker
from .errors import TaskError
from .ids import TaskId
from .permissions import PERMISSION_REPLIES, reply
from .reader import TaskReader
from .state import TERMINAL
from .views import AbortView, PendingRequest, RespondView
from .waiter import TaskWaiter

log = logging.getLogger(__name__)

ABORT_SETTLE_SECONDS = 10.0  # how long abort waits to see the task stopped


class TaskControl:
    def __init__(self, client: OpenCodeClient, broker: PermissionBroker, reader: TaskReader) -> None:
        self.client = client
        self.broker = broker
        self.reader = reader

    async def abort(self, tid: TaskId, waiter: TaskWaiter) -> AbortView:
        view, _, tid, _ = await self.reader.read(tid, with_files=False)
        if view.status in TERMINAL:
            return AbortView(
                task_id=view.task_id,
                aborted=False,
                status=view.status,
                message=f"Nothing to abort: the task had already ended ({view.status}).",
            )
        await self.client.abort(tid.session_id)
        await self._drop_stale_requests(tid.session_id, view.pending)
        view = await waiter.wait(tid, timeout=ABORT_SETTLE_SECONDS)
        return AbortView(
            task_id=view.task_id,
            aborted=True,
            status=view.status,
            message="The task was stopped; its messages and changes so far stay readable.",
        )

    async def _drop_stale_requests(self, session_id: str, pending: list[PendingRequest]) -> None:
        """OpenCode keeps a request listed after an abort; answer it so it goes away."""
        try:
            for request in pending:
                self.broker.forget(request.id)
                await reply(self.client, request.id, request.kind, "reject", message="Task aborted.")
        except OpenCodeError as exc:
            log.warning("could not clear requests of aborted session %s: %s", session_id, exc)

    async def respond(
        self,
        tid: TaskId,
        request_id: str,
        decision: str | None,
        answers: list[list[str]] | None,
        message: str | None,
    ) -> RespondView:
        view, _, tid, _ = await self.reader.read(tid, with_files=False)
        request = next((p for p in view.pending if p.id == request_id), None)
        if request is None:
            open_ids = ", ".join(p.id for p in view.pending) or "none"
            why = (
                f" (PERMISSION_POLICY={self.broker.policy}: the gateway answers every request itself; "
                "respond_to_task answers under PERMISSION_POLICY=ask)"
                if self.broker.policy != "ask"
                else ""
            )
            raise TaskError(
                f"task {view.task_id} has no open request {request_id!r} (status {view.status}); "
                f"open requests: {open_ids}{why}"
            )
        if request.kind == "permission":
            if decision not in PERMISSION_REPLIES:
                raise TaskError(f"request {request_id} is a permission: reply must be one of once, always, reject")
        elif decision != "reject":
            if not answers or len(answers) != len(request.questions):
                raise TaskError(
                    f"request {request_id} asks {len(request.questions)} question(s): pass answers as one list "
                    "of chosen labels per question, e.g. [[\"yes\"]], or reply='reject'"
                )
            decision = "answer"
        await self.answer(tid, request, decision or "reject", answers, message)
        after = await self.reader.view(tid, with_files=False)
        return RespondView(
            task_id=view.task_id, request_id=request_id, answered=True, status=after.status, pending=after.pending
        )

    async def answer(
        self,
        tid: TaskId,
        request: PendingRequest,
        decision: str,
        answers: list[list[str]] | None,
        message: str | None = None,
    ) -> None:
        self.broker.forget(request.id)
        try:
            await reply(self.client, request.id, request.kind, decision, answers=answers, message=message)
        except OpenCodeNotFound:
            raise TaskError(f"request {request.id} was already answered or has expired") from None
        metrics.PERMISSION_REQUESTS.labels(request.kind, "answered").inc()
        self.broker.add_notice(tid.session_id, f"{request.kind} request {request.id} answered: {decision}")
