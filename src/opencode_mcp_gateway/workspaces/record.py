"""A task's workspace as its session's metadata records it (`Record`, read by every
replica), and a workspace about to be made (`Plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..opencode import Session
from .repos import Tree

TRAILER = "Opencode-Task-Id"  # the commit trailer naming the task that made a commit


@dataclass
class Record:
    """What the session's metadata holds under `workspace` (the view shows all but the last four)."""

    repository: str
    ref: str
    base_commit: str
    branch: str | None
    head_commit: str | None
    directory: str
    pushed: bool
    push_error: str | None
    push: bool
    git_dir: str
    remote: bool
    task_id: str | None = None

    @property
    def tree(self) -> Tree:
        return Tree(Path(self.directory), Path(self.git_dir))

    @classmethod
    def of(cls, session: Session) -> Record | None:
        raw = session.metadata.get("workspace")
        if not isinstance(raw, dict):
            return None
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


@dataclass
class Plan:
    record: Record
    url: str | None  # as given (it may carry the caller's own credential): kept in memory only
