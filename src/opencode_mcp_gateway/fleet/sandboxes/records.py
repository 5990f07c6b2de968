"""What the gateway keeps about each sandbox, beside the sandboxes but outside every one of
them (`<state>/sandboxes/meta/<name>.json`), so an agent cannot add a directory to its own
mounts: its scope, a hash of its owner and the directories it was given. The file's mtime is
the sandbox's last use, which every gateway process on the state directory sees.

While a sandbox is stopped, its tasks as `list_tasks` showed them when it stopped are kept
beside its record (`listings/<name>.json`), so a listing need not start its OpenCode."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Meta:
    scope: str
    owner: str  # a hash of the owning identity
    directories: list[str] = field(default_factory=list)


class Records:
    def __init__(self, where: Path) -> None:
        self.where = where
        self.listings = where / "listings"
        self.listings.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.where / f"{name}.json"

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def names(self, prefix: str) -> list[str]:
        return sorted(path.stem for path in self.where.glob(f"{prefix}*.json"))

    def read(self, name: str) -> Meta | None:
        try:
            raw = json.loads(self._path(name).read_text())
        except (OSError, ValueError):
            return None
        return Meta(**{k: v for k, v in raw.items() if k in Meta.__dataclass_fields__})

    def write(self, name: str, meta: Meta) -> None:
        _replace(self._path(name), asdict(meta))

    def forget(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
        self.drop_listing(name)

    def _listing_path(self, name: str) -> Path:
        return self.listings / f"{name}.json"

    def keep_listing(self, name: str, tasks: list[Any]) -> None:
        _replace(self._listing_path(name), tasks)

    def has_listing(self, name: str) -> bool:
        return self._listing_path(name).exists()

    def kept_listing(self, name: str) -> list[Any] | None:
        """The tasks kept when the sandbox stopped; None when none are (it runs, or never stopped)."""
        try:
            kept = json.loads(self._listing_path(name).read_text())
        except (OSError, ValueError):
            return None
        return kept if isinstance(kept, list) else None

    def drop_listing(self, name: str) -> None:
        self._listing_path(name).unlink(missing_ok=True)

    def touch(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.utime(self._path(name))

    def last_use(self, name: str) -> float:
        try:
            return self._path(name).stat().st_mtime
        except OSError:
            return 0.0


def _replace(path: Path, content: Any) -> None:
    """Replaced whole: a reader (any gateway process) never sees half a file."""
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(content))
    temporary.replace(path)
