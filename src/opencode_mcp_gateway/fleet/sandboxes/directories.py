"""Which directory a sandbox may show its agent beside its own workspace: one the caller
names (`directory`), inside WORKSPACE_ROOT, that holds none of the gateway's own files."""

from __future__ import annotations

import os
from pathlib import Path

from ...config import Settings
from ...workspaces import WorkspaceError, resolve_directory


def shown_directory(directory: str | None, settings: Settings, root: Path) -> str | None:
    """The resolved path of `directory` (None when none is asked), or a WorkspaceError that
    says what to choose instead. `root` is where the sandboxes live."""
    if directory is None or not directory.strip():
        return None
    if not settings.workspace_root:
        raise WorkspaceError(
            "directory needs WORKSPACE_ROOT with sandboxes: a sandbox shows its agent only directories under "
            "it. Leave directory out (the task runs in your sandbox's own workspace) or ask the operator"
        )
    path = resolve_directory(directory, settings.workspace_root)
    assert path is not None
    for held in _gateway_paths(settings, root):
        if os.path.commonpath([path, held]) == path:
            raise WorkspaceError(f"directory {directory!r} holds the gateway's own files; choose one inside it")
    return path


def _gateway_paths(settings: Settings, root: Path) -> list[str]:
    paths = [str(root), settings.mcp_api_keys_file, settings.git_credentials_file, settings.workspaces_path]
    return [os.path.realpath(p) for p in paths if p]
