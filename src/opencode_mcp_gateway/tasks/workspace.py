"""Which directory a task runs in, checked before OpenCode sees it.

OpenCode accepts any `?directory=` (a missing one silently becomes the "global"
project), so the gateway checks that it exists and, with WORKSPACE_ROOT, that it lies
inside that root once symlinks are resolved.
"""

from __future__ import annotations

import os


class WorkspaceError(ValueError):
    pass


def resolve_directory(directory: str | None, workspace_root: str | None) -> str | None:
    if directory is None or not directory.strip():
        return None
    raw = directory.strip()
    if workspace_root and not os.path.isabs(raw):
        raw = os.path.join(workspace_root, raw)
    if not os.path.isabs(raw):
        raise WorkspaceError(f"directory {directory!r} must be an absolute path on the OpenCode host")
    path = os.path.realpath(raw)
    if not os.path.isdir(path):
        raise WorkspaceError(f"directory {directory!r} does not exist (or is not a directory) on the OpenCode host")
    if workspace_root:
        root = os.path.realpath(workspace_root)
        if os.path.commonpath([root, path]) != root:
            raise WorkspaceError(f"directory {directory!r} is outside WORKSPACE_ROOT ({root}); use a path inside it")
    return path
