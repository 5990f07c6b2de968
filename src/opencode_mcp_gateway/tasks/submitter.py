"""Submitting a task: check what was asked, make (or continue) its session, send the prompt.

A new task gets a new session (in its directory, or in a fresh worktree of a repository);
a follow-up (`task_id`) continues its task's session, in the same directory or worktree.
The task id is known before the prompt is sent: the gateway picks the user message id.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio

from ..config import Settings
from ..opencode import OpenCodeClient, OpenCodeError, Session
from ..workspaces import (
    Plan,
    WorkspaceError,
    Workspaces,
    check_inside_root,
    confirm_session_directory,
    resolve_directory,
)
from . import attachments, shaping
from .attachments import AttachmentInput
from .budget import Budget
from .catalog import Catalog
from .errors import TaskError
from .ids import TaskId, new_message_id
from .ownership import owner_to_record
from .permissions import session_metadata, session_rules
from .sessions import SessionStore
from .shaping import Shape
from .tracker import TaskTracker

log = logging.getLogger(__name__)
OWED_TASKS = 16  # tasks of one session whose webhook is still owed (webhooks/records.py)


@dataclass(frozen=True)
class TaskRequest:
    """What a caller asks for when it submits a task (both run tools take the same)."""

    prompt: str
    agent: str | None = None
    model: str | None = None
    directory: str | None = None
    title: str | None = None
    task_id: TaskId | None = None  # the earlier task a follow-up continues
    budget: Budget = field(default_factory=Budget)
    repository: str | None = None
    ref: str | None = None
    branch: str | None = None
    push: bool = False
    isolate: bool = False
    notify_url: str | None = None  # checked by the caller (webhooks.check_notify_url)
    read_only: bool = False  # no tool that can change the workspace (shaping.py)
    output_schema: dict[str, Any] | None = None  # the JSON answer wanted (structured.py)
    attachments: tuple[AttachmentInput, ...] = ()  # files and images for the prompt (attachments.py)

    @property
    def wants_workspace(self) -> bool:
        return bool(self.repository or self.ref or self.branch or self.push or self.isolate)


class TaskSubmitter:
    def __init__(
        self,
        settings: Settings,
        client: OpenCodeClient,
        catalog: Catalog,
        sessions: SessionStore,
        workspaces: Workspaces,
        tracker: TaskTracker | None,
        home: str | None = None,
    ) -> None:
        self.settings = settings
        self.home = home  # a sandbox's own workspace: its tasks' default directory, not the caller's choice
        self.client = client
        self.catalog = catalog
        self.sessions = sessions
        self.workspaces = workspaces
        self.tracker = tracker

    async def submit(self, request: TaskRequest) -> TaskId:
        if not request.prompt or not request.prompt.strip():
            raise TaskError("prompt is empty: say what OpenCode should do, e.g. 'Add a docstring to calc.py'")
        shape = shaping.check(  # before anything is created
            request.read_only,
            request.output_schema,
            request.attachments,
            push=request.push,
            max_bytes=self.settings.max_attachment_bytes,
            max_count=self.settings.max_attachments,
        )
        await self.client.versions.require()  # an OpenCode this gateway does not speak gets no task
        plan = None
        session = None
        if request.task_id and request.wants_workspace:
            raise TaskError(
                "a follow-up continues in its task's worktree and branch: leave repository, ref, branch, push "
                "and isolate out"
            )
        if request.task_id:
            session = await self.sessions.get(request.task_id.session_id)
            workdir = session.directory
            if not self.workspaces.owns_session(session) and (self.home is None or workdir != self.home):
                # A worktree lives under WORKSPACES_DIR; anything else must lie under WORKSPACE_ROOT.
                check_inside_root(str(workdir or ""), self.settings.workspace_root, shown=str(workdir))
            if request.directory and resolve_directory(request.directory, self.settings.workspace_root) != workdir:
                raise TaskError(
                    f"a follow-up runs in its task's directory ({workdir}); leave directory out or start a new task"
                )
        else:
            plan = await self.workspaces.prepare(
                repository=request.repository,
                ref=request.ref,
                branch=request.branch,
                push=request.push,
                isolate=request.isolate,
                directory=request.directory,
            )
            workdir = (
                plan.record.directory if plan else resolve_directory(request.directory, self.settings.workspace_root)
            )
        try:
            return await self._start(request, workdir, session, plan, shape)
        except BaseException:
            if plan:  # no task runs there: the worktree goes (the branch too, if unnamed)
                with anyio.CancelScope(shield=True):
                    await self.workspaces.discard(plan)
            raise

    async def _start(
        self, request: TaskRequest, workdir: str | None, session: Session | None, plan: Plan | None, shape: Shape
    ) -> TaskId:
        """`session`: the earlier task's session for a follow-up, else None (a new session)."""
        agent = request.agent or self.settings.default_agent
        await self.catalog.check_agent(agent, workdir)
        chosen = request.model or self.settings.default_model
        provider_model = await self.catalog.check_model(chosen, workdir) if chosen else None
        if provider_model and any(a.is_image for a in shape.attachments):
            await self.catalog.check_images(provider_model, workdir)
        message_id = new_message_id()
        record = shape.record(request.prompt)
        if session is not None:
            session_id = session.id
            task = TaskId(session_id, message_id, self.client.worker)
            resumed = await self.workspaces.resume(session, str(task))
            if resumed:
                self.sessions.remember(resumed)
            await self._record_follow_up(resumed or session, request, message_id, record)
        else:
            name = (request.title or request.prompt.strip().splitlines()[0])[:80]
            metadata = session_metadata(
                self.settings.permission_policy,
                owner=owner_to_record(),
                budget=request.budget.as_metadata(),
                workspace=asdict(plan.record) if plan else None,
                notify=self._notify(None, request.notify_url, message_id),
            )
            created = await self.client.create_session(
                directory=workdir,
                title=f"{self.settings.session_title_prefix}: {name}",
                permission=session_rules(self.settings.permission_policy),
                metadata=shaping.with_record(metadata, message_id, record) if record else metadata,
            )
            session_id = created.id
            await self._confirm_workspace(created, workdir)
            task = TaskId(session_id, message_id, self.client.worker)
            if plan:
                created = await self.workspaces.adopt(plan, created, str(task))
            self.sessions.remember(created)
        await self.client.prompt_async(
            session_id,
            message_id=message_id,
            text=request.prompt,
            agent=agent,
            model=provider_model,
            parts=attachments.to_parts(shape.attachments),
            output_format=shape.output_format(),
            tools=shaping.tool_switches(await self._tool_ids()) if shape.read_only else None,
        )
        if self.tracker is not None:
            self.tracker.track(task, request.budget)
        return task

    async def _confirm_workspace(self, created: Session, workdir: str | None) -> None:
        """A session OpenCode placed elsewhere than decided is deleted before it can run."""
        try:
            confirm_session_directory(created.directory, workdir)
        except WorkspaceError:
            log.warning("session %s landed in %r, not %r: deleting it", created.id, created.directory, workdir)
            with contextlib.suppress(OpenCodeError):  # the refusal stands even if the delete fails
                await self.client.delete_session(created.id)
            raise

    async def _record_follow_up(
        self, session: Session, request: TaskRequest, message_id: str, record: dict[str, Any] | None
    ) -> None:
        """A follow-up's budget replaces the session's (a session runs one task at a time), its
        task becomes the one the session's webhooks are about, and its shaping record, if it
        needs one, joins the session's."""
        if self.settings.webhooks_enabled:  # read afresh: webhooks write `notify.sent` elsewhere
            session = await self.client.get_session(session.id)
        metadata = {k: v for k, v in session.metadata.items() if k != "budget"}
        if request.budget.as_metadata():
            metadata["budget"] = request.budget.as_metadata()
        notify = self._notify(metadata.get("notify"), request.notify_url, message_id)
        if notify is not None:
            metadata["notify"] = notify
        if record is not None:
            metadata = shaping.with_record(metadata, message_id, record)
        if metadata == session.metadata:
            return
        self.sessions.remember(await self.client.update_session_metadata(session.id, metadata))

    def _notify(self, previous: Any, url: str | None, message_id: str) -> dict[str, Any] | None:
        """The session's `notify` record (webhooks/records.py reads it): the caller's URL, which
        a follow-up's new notify_url replaces, the newest task, the tasks whose end is still
        owed, and whether the deployment-wide WEBHOOK_URL is owed their events; what was sent is
        kept. None: the events go nowhere."""
        record = dict(previous) if isinstance(previous, dict) else {}
        if url:
            record["url"] = url
        if self.settings.webhook_url:
            record["deployment"] = True
        if not record:
            return None
        owed = record.get("owed")
        record["task"] = message_id
        record["owed"] = [*(owed if isinstance(owed, list) else []), message_id][-OWED_TASKS:]
        return record

    async def _tool_ids(self) -> list[str]:
        """The tools OpenCode offers, so that a read-only turn switches off plugins' too
        (the writing built-ins are off whatever this answers)."""
        try:
            return await self.client.tool_ids()
        except OpenCodeError as exc:
            log.warning("could not list OpenCode's tools (%s): a read-only turn switches off the built-in ones", exc)
            return []
