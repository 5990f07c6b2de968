"""A task's conversation and its diff, in pages bounded by MAX_OUTPUT_BYTES."""

from __future__ import annotations

from ..config import Settings
from . import bounds, shaping
from .errors import TaskError
from .ids import TaskId
from .reader import TaskReader
from .views import DiffView, MessagesView


class TaskPages:
    def __init__(self, settings: Settings, reader: TaskReader) -> None:
        self.settings = settings
        self.reader = reader

    async def messages(self, tid: TaskId, *, limit: int, offset: int) -> MessagesView:
        task_id = str(tid)
        turn = await self.reader.resolve(tid, history=True)
        conversation = [
            shaping.restored(turn.session, m) for m in bounds.task_conversation(turn.messages, str(turn.tid.message_id))
        ]
        page = bounds.page_messages(
            conversation, limit=limit, offset=offset, budget=self.settings.max_output_bytes, task_id=task_id
        )
        return MessagesView(
            task_id=task_id,
            messages=page.items,
            total=page.total,
            truncated=page.truncated,
            note=page.note,
        )

    async def diff(self, tid: TaskId, *, path: str | None = None) -> DiffView:
        task_id = str(tid)
        turn = await self.reader.resolve(tid)
        files = await self.reader.diff_files(turn.tid)
        if path:
            wanted = [f for f in files if f.get("file") == path or str(f.get("file", "")).endswith("/" + path)]
            if not wanted:
                changed = ", ".join(str(f.get("file")) for f in files) or "none"
                raise TaskError(f"task {task_id} did not change {path!r}; files it changed: {changed}")
            files = wanted
        page = bounds.page_diff(files, budget=self.settings.max_output_bytes, task_id=task_id)
        return DiffView(task_id=str(turn.tid), files=page.items, truncated=page.truncated, note=page.note)
