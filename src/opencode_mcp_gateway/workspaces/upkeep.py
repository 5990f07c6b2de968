"""What the workspaces need while nobody calls: settling each isolated session that goes
idle, pushing again what failed (push_retries.py), and removing worktrees idle for
WORKSPACE_TTL_HOURS (the branch keeps the work; a follow-up brings the worktree back)."""

from __future__ import annotations

import json
import logging
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

import anyio

from ..config import Settings
from ..opencode import EventHub, OpenCodeClient, OpenCodeError
from ..primitives import LRU
from .git import RepositoryError
from .push_retries import PushRetries
from .record import Record
from .repos import Repos, Tree

log = logging.getLogger(__name__)
SETTLE_GRACE_SECONDS = 1.0  # an idle session's work is committed this long after the event


class Workspaces(Protocol):
    """What upkeep needs of the workspaces (manager.py)."""

    settings: Settings
    root: Path
    client: OpenCodeClient
    repos: Repos
    plain: LRU[str, bool]  # sessions known to have no workspace: their idleness needs nothing
    push_retries: PushRetries

    async def settle(self, session_id: str) -> Record | None: ...
    def owns(self, record: Record) -> bool: ...
    def locked(self, tree: Tree) -> AbstractAsyncContextManager[None]: ...


async def watch(ws: Workspaces, hub: EventHub) -> None:
    """Settles every isolated session that goes idle, also when nobody waits for it: a
    moment later, so that its reads are not on the completion path of a caller waiting
    for the task (whose read settles it first). Tries a failed push again when due."""
    settling: set[str] = set()

    async def settle_soon(sid: str) -> None:
        await anyio.sleep(SETTLE_GRACE_SECONDS)
        settling.discard(sid)
        try:
            record = await ws.settle(sid)
            if record is None or not ws.owns(record):
                ws.plain[sid] = True
        except (OpenCodeError, RepositoryError) as exc:
            log.warning("could not commit the work of session %s: %s", sid, exc)
            if ws.push_retries.waiting(sid):  # the push due again could not be tried: that counts
                ws.push_retries.failed(sid, time.monotonic())

    async with anyio.create_task_group() as tg:

        def settle_later(sid: str) -> None:
            if sid not in settling:
                settling.add(sid)
                tg.start_soon(settle_soon, sid)

        with hub.subscribe(None) as sub:
            while True:
                due = ws.push_retries.next_due()
                wait = 60.0 if due is None else min(60.0, max(due - time.monotonic(), 0.05))
                for event in await sub.next_batch(timeout=wait):
                    sid = (event.get("properties") or {}).get("sessionID")
                    if event.get("type") == "session.idle" and sid and sid not in ws.plain:
                        settle_later(sid)
                for sid in ws.push_retries.due(time.monotonic()):  # failed pushes, tried again
                    settle_later(sid)


async def janitor(ws: Workspaces) -> None:
    ttl = ws.settings.workspace_ttl_hours * 3600
    while True:
        await anyio.sleep(min(max(ttl / 4, 1.0), 600.0))
        for note in sorted((ws.root / "state").glob("*.json")):
            if time.time() - note.stat().st_mtime >= ttl:
                try:
                    await _expire(ws, note)
                except (OpenCodeError, RepositoryError, OSError, ValueError) as exc:
                    log.warning("janitor could not remove %s: %s", note.stem, exc)


async def _expire(ws: Workspaces, note: Path) -> None:
    info = json.loads(await anyio.Path(note).read_text())
    tree = Tree(ws.root / "worktrees" / note.stem, Path(info["git_dir"]))
    sid = info.get("session")
    if info.get("worker", "w0") != ws.client.worker:
        return  # another worker's session: that worker's janitor removes it
    if sid and sid in await ws.client.session_status(str(tree.path)):
        return  # still working: not idle, whatever the clock says
    if sid:
        await ws.settle(sid)  # nothing of the agent's work is lost with the worktree
    async with ws.locked(tree):
        await anyio.to_thread.run_sync(ws.repos.remove_worktree, tree)
        await anyio.Path(note).unlink(missing_ok=True)
    log.info("removed worktree %s, idle for more than WORKSPACE_TTL_HOURS", tree.path)
