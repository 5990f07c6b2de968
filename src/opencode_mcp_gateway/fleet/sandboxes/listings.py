"""What a sandbox leaves for `list_tasks` when it stops: its tasks as a listing showed them.

Nothing runs in a stopped sandbox, so that is what they still are; listing them from it
starts no OpenCode. Kept beside the sandbox's record (records.py), read as nobody (a
sandbox may stop inside another caller's call, to make room for theirs, and the listing
must not be filtered by that caller), and dropped when the sandbox starts again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

import anyio

from ...opencode import OpenCodeError
from ...tasks import TaskError
from ...tasks.ownership import acting_as
from ..worker import Listing, Worker
from .records import Records

log = logging.getLogger(__name__)

KEEP_SECONDS = 5.0  # reading stopping sandboxes' tasks; past it the stop goes on without


async def keep(records: Records, listing: Listing | None, workers: dict[str, Worker]) -> None:
    """Keeps each of these running sandboxes' listing, all within one deadline."""
    if listing is None:
        return

    async def one(name: str, worker: Worker) -> None:
        try:
            records.keep_listing(name, await listing(worker))
        except (OpenCodeError, TaskError) as exc:
            log.warning("sandbox %s: its tasks could not be read for listing while it is stopped: %s", name, exc)

    with acting_as(None), anyio.move_on_after(KEEP_SECONDS):
        async with anyio.create_task_group() as tg:
            for name, worker in workers.items():
                tg.start_soon(one, name, worker)


def of_stopped(records: Records, running: Collection[str], may_enter: Callable[[str], bool]) -> list[Any]:
    """The tasks kept of the stopped sandboxes (not running in this process) the caller may enter."""
    kept: list[Any] = []
    for name in records.names(""):
        if name not in running and may_enter(name):
            kept.extend(records.kept_listing(name) or ())
    return kept
