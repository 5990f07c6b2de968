"""Isolated workspaces: each task works in its own worktree on its own branch.

`prepare` checks the caller's input, clones or fetches, and makes the worktree at `ref`;
`adopt` names the branch once the session exists and records the workspace in the
session's metadata, where every gateway replica reads it. `settle` runs when a turn
ends (from whichever of the waiting call, a status read or the idle watcher gets there
first): under a lock shared by every process on this filesystem it commits what the
agent changed, pushes if asked, and records head_commit/pushed/push_error. A repeat
finds nothing to commit and nothing new to push, so it is harmless; a push that failed is
tried again when push_retries.py says it is due. The background work (settling idle
sessions, retrying pushes, removing worktrees idle for WORKSPACE_TTL_HOURS) is upkeep.py.

The git work happens here, in the gateway process, on the filesystem it shares with
its OpenCode worker (spawn mode, or the same pod).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio

from ..config import Settings
from ..opencode import EventHub, OpenCodeClient, Session
from ..primitives import LRU
from . import upkeep
from .branch_diff import branch_diff
from .directory import resolve_directory
from .git import Git, RepositoryError, find_credential, strip_userinfo
from .push_retries import PushRetries
from .record import TRAILER, Plan, Record
from .repos import Repos, Tree, check_ref_name, check_repository, clean_url, file_lock

log = logging.getLogger(__name__)


class Workspaces:
    def __init__(self, settings: Settings, client: OpenCodeClient) -> None:
        self.settings = settings
        self.client = client
        self.root = Path(settings.workspaces_path)
        # Resolved now: later, a link on the shared volume (the agent's to write) must not move it.
        self._real_worktrees = os.path.join(os.path.realpath(self.root), "worktrees")
        self.git = Git(self.root / "home", secrets=self._secrets)
        self.repos = Repos(
            self.root,
            self.git,
            credentials_file=settings.git_credentials_file,
            timeout=settings.repository_fetch_timeout_seconds,
            max_bytes=settings.repository_max_size_mb * 2**20,
        )
        self._urls: LRU[str, str] = LRU(1000)  # session -> URL with the caller's credential
        self.push_retries = PushRetries()
        self._locks: dict[str, anyio.Lock] = {}
        self.plain: LRU[str, bool] = LRU(10_000)  # sessions known to have no workspace

    # -- starting a task -----------------------------------------------------------------------
    async def prepare(
        self,
        *,
        repository: str | None,
        ref: str | None,
        branch: str | None,
        push: bool,
        isolate: bool,
        directory: str | None,
    ) -> Plan | None:
        """The workspace a new task asks for, with its worktree made; None for a plain task."""
        if repository and directory:
            raise RepositoryError("pass repository or directory, not both: a repository task gets its own worktree")
        if not repository and not isolate:
            if ref or branch or push:
                raise RepositoryError("ref, branch and push need repository (or isolate with a local directory)")
            return None
        if push and not repository:
            raise RepositoryError(
                "push needs repository: an isolated local task's branch is already in your repository"
            )
        ref = check_ref_name(ref, "ref") if ref else None
        branch = check_ref_name(branch, "branch") if branch else None
        url: str | None = None
        if repository:
            url = check_repository(repository, self.settings.repository_allow_list)
            common, default = await anyio.to_thread.run_sync(self.repos.sync, url)
            shown, start = clean_url(url), ref or default
        else:
            local = resolve_directory(directory, self.settings.workspace_root)
            if local is None:
                raise RepositoryError("isolate needs directory: the local git repository to make a worktree of")
            common = await anyio.to_thread.run_sync(self.repos.common_dir, Path(local))
            shown = local
            current = await anyio.to_thread.run_sync(self.repos.current_branch, common)
            start = ref or current
        remote = url is not None
        base = await anyio.to_thread.run_sync(lambda: self.repos.resolve(common, start, remote=remote))
        if base is None:
            raise RepositoryError(f"ref {start!r} not found in {shown}: name a branch, tag or commit it has")
        taken = bool(branch) and await anyio.to_thread.run_sync(self.repos.branch_exists, common, branch or "")
        if taken:
            raise RepositoryError(f"branch {branch!r} already exists in {shown}: choose a new branch name")
        tree = Tree(self.root / "worktrees" / f"wt-{secrets.token_hex(6)}", common)
        await anyio.to_thread.run_sync(self.repos.add_worktree, tree, base, branch)
        self._note(tree, None)
        record = Record(shown, start, base, branch, None, str(tree.path), False, None, push, str(common), remote)
        return Plan(record, url)

    async def adopt(self, plan: Plan, session: Session, task_id: str) -> Session:
        """Names the branch after the new session and records the workspace in its metadata."""
        record, sid = plan.record, session.id
        if record.branch is None:
            record.branch = f"opencode/{sid.removeprefix('ses_')[-10:]}"
            await anyio.to_thread.run_sync(self.repos.name_branch, record.tree, record.branch)
        record.task_id = task_id
        if plan.url and plan.url != strip_userinfo(plan.url):
            self._urls[sid] = plan.url
        self._note(record.tree, sid)
        return await self._save(session, record)

    async def discard(self, plan: Plan) -> None:
        """Undoes `prepare` when no task came of it: the worktree, and the branch it created."""
        with contextlib.suppress(RepositoryError):
            await anyio.to_thread.run_sync(self.repos.remove_worktree, plan.record.tree, plan.record.branch)

    async def resume(self, known: Session, task_id: str) -> Session | None:
        """A follow-up: the same worktree (put back if the janitor took it), a new task id.
        `known` may be a cached copy: a session without a workspace never gains one, one with
        a workspace is read afresh (another replica may have settled it since)."""
        if Record.of(known) is None:
            return None
        session_id = known.id
        session = await self.client.get_session(session_id)
        record = Record.of(session)
        if record is None:
            return None
        async with self.locked(record.tree):
            if not record.tree.exists() and record.branch and self._here(record):
                await anyio.to_thread.run_sync(self.repos.restore_worktree, record.tree, record.branch)
            self._note(record.tree, session_id)
            record.task_id = task_id
            return await self._save(session, record)

    # -- when a turn ends --------------------------------------------------------------------------
    async def settle(self, session_id: str) -> Record | None:
        """Commits the turn's changes, pushes if asked, and records the outcome. Idempotent."""
        session = await self.client.get_session(session_id)
        record = Record.of(session)
        if record is None or not record.branch or not self.owns(record):
            return record  # not isolated, or another gateway's (another worker, or other settings)
        async with self.locked(record.tree):
            session = await self.client.get_session(session_id)  # another process may have settled it
            record = Record.of(session) or record
            assert record.branch
            self._check_untampered(record)
            if record.tree.exists():
                title = (session.title or "").removeprefix(f"{self.settings.session_title_prefix}: ")
                author = self.settings.git_author
                trailer = f"{TRAILER}: {record.task_id or session_id}"
                message = title or "OpenCode task"
                await anyio.to_thread.run_sync(self.repos.commit_all, record.tree, author, message, trailer)
                self._note(record.tree, session_id)
            head = await anyio.to_thread.run_sync(self.repos.head, Path(record.git_dir), record.branch)
            pushing = record.push and record.remote
            if head != record.head_commit:
                record.head_commit, record.pushed, record.push_error = head, False, None
                self.push_retries.succeeded(session_id)  # a new commit: pushed at once, on a fresh schedule
            elif not (pushing and not record.pushed and self.push_retries.is_due(session_id, time.monotonic())):
                return record  # nothing new, and no failed push due to be tried again
            if pushing:
                await self._push(session_id, record)
            await self._save(session, record)
            return record

    async def _push(self, session_id: str, record: Record) -> None:
        assert record.branch
        url = self._urls.get(session_id, record.repository)
        try:
            await anyio.to_thread.run_sync(self.repos.push, url, record.tree, record.branch)
            record.pushed, record.push_error = True, None
            self.push_retries.succeeded(session_id)
        except RepositoryError as exc:
            record.push_error = str(exc)
            due = self.push_retries.failed(session_id, time.monotonic())
            again = f"trying again in {due - time.monotonic():.0f} s" if due is not None else "not trying again"
            log.warning("push of %s for session %s failed (%s): %s", record.branch, session_id, again, exc)

    async def diff(self, record: Record) -> list[dict[str, Any]]:
        if not await anyio.Path(record.git_dir).is_dir():
            return []
        self._check_untampered(record)
        return await anyio.to_thread.run_sync(branch_diff, self.git, record.tree, record.base_commit, record.branch)

    # -- background work (upkeep.py) ------------------------------------------------------------
    async def watch(self, hub: EventHub) -> None:
        await upkeep.watch(self, hub)

    async def janitor(self) -> None:
        await upkeep.janitor(self)

    def owns_session(self, session: Session) -> bool:
        """The session runs in a worktree this gateway made (under WORKSPACES_DIR), so the
        WORKSPACE_ROOT rule for caller-chosen directories does not apply to it."""
        record = Record.of(session)
        return record is not None and record.directory == session.directory and self._here(record)

    # -- helpers --------------------------------------------------------------------------------------
    def owns(self, record: Record) -> bool:
        """Its worktree is under this gateway's WORKSPACES_DIR: gateways sharing that directory
        share its locks and settings; any other gateway on the same OpenCode leaves it alone."""
        return self._here(record) and os.path.isdir(record.git_dir)

    def _check_untampered(self, record: Record) -> None:
        """The record comes from session metadata (the agent holds OpenCode's password and can
        rewrite it) and the worktree lives on the volume the agent writes: before the gateway
        commits, diffs or pushes with its credentials, both must still be its own."""
        tree = Path(record.directory)
        if os.path.realpath(tree) != os.path.join(self._real_worktrees, tree.name):
            raise RepositoryError(f"the task's worktree {tree} is no longer a directory of WORKSPACES_DIR (a link?)")
        if record.remote:
            check_repository(record.repository, self.settings.repository_allow_list)
            if Path(record.git_dir) != self.repos.cache_for(record.repository):
                raise RepositoryError(f"the task's record names a git directory that is not {record.repository}'s")

    def _here(self, record: Record) -> bool:
        return Path(record.directory).parent == self.root / "worktrees"

    async def _save(self, session: Session, record: Record) -> Session:
        metadata = {**session.metadata, "workspace": asdict(record)}
        return await self.client.update_session_metadata(session.id, metadata)

    def _note(self, tree: Tree, session_id: str | None) -> None:
        """Marks the worktree as used now (the janitor's clock) and where it belongs."""
        note = self.root / "state" / f"{tree.path.name}.json"
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text(json.dumps({"git_dir": str(tree.common), "session": session_id, "worker": self.client.worker}))

    @contextlib.asynccontextmanager
    async def locked(self, tree: Tree) -> AsyncIterator[None]:
        lock = self._locks.setdefault(tree.path.name, anyio.Lock())
        async with lock:
            cm = file_lock(self.root / "locks" / f"{tree.path.name}.lock")
            await anyio.to_thread.run_sync(cm.__enter__)
            try:
                yield
            finally:
                cm.__exit__(None, None, None)

    def _secrets(self) -> list[str]:
        found = [c.password for u in self._urls.values() if (c := find_credential(u, None))]
        path = self.settings.git_credentials_file
        if path and os.path.isfile(path):
            with contextlib.suppress(OSError):
                for line in Path(path).read_text().splitlines():
                    if (c := find_credential(line.strip(), None)) and len(c.password) >= 4:
                        found.append(c.password)
        return found
