"""What the gateway keeps about each sandbox, beside the sandboxes but outside every one of
them (`<state>/sandboxes/meta/<name>.json`), so an agent cannot add a directory to its own
mounts: its scope, a hash of its owner and the directories it was given. The file's mtime is
the sandbox's last use, which every gateway process on the state directory sees."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Meta:
    scope: str
    owner: str  # a hash of the owning identity
    directories: list[str] = field(default_factory=list)


class Records:
    def __init__(self, where: Path) -> None:
        self.where = where
        where.mkdir(parents=True, exist_ok=True)

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
        path = self._path(name)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")  # replaced whole: a reader never sees half
        temporary.write_text(json.dumps(asdict(meta)))
        temporary.replace(path)

    def forget(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def touch(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.utime(self._path(name))

    def last_use(self, name: str) -> float:
        try:
            return self._path(name).stat().st_mtime
        except OSError:
            return 0.0
