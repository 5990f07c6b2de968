"""Which directory a task runs in, checked before OpenCode sees it.

OpenCode accepts any `?directory=` (a missing one silently becomes the "global"
project), so the gateway checks that it exists and, with WORKSPACE_ROOT, that it lies
inside that root once symlinks are resolved.

OpenCode also reinterprets what it is sent: `\\` is a path separator to it and it decodes
percent-escapes, so a directory literally named `esc\\..\\..\\etc` inside the root lands in
/etc. Such names are refused, and the directory OpenCode reports for a new session is
compared with the one decided here (`confirm_session_directory`).
"""

from __future__ import annotations

import os
import re

# Characters OpenCode would read differently from the file system: `\` (a separator to it),
# percent-escapes (decoded again), and control characters.
_REINTERPRETED = re.compile(r"[\\\x00-\x1f\x7f]|%[0-9A-Fa-f]{2}")


class WorkspaceError(ValueError):
    """The workspace layer's one error base: a directory or repository the task cannot work in;
    the message says what to fix. The tool layer turns it into a tool error (isError), as it
    does the task layer's TaskError; a ValueError for the same reason."""


def resolve_directory(directory: str | None, workspace_root: str | None) -> str | None:
    if directory is None or not directory.strip():
        return None
    raw = directory.strip()
    _refuse_reinterpreted(directory)
    if workspace_root and not os.path.isabs(raw):
        raw = os.path.join(workspace_root, raw)
    if not os.path.isabs(raw):
        raise WorkspaceError(f"directory {directory!r} must be an absolute path on the OpenCode host")
    path = os.path.realpath(raw)
    if not os.path.isdir(path):
        raise WorkspaceError(f"directory {directory!r} does not exist (or is not a directory) on the OpenCode host")
    _refuse_reinterpreted(path)  # a symlink may point at such a name
    check_inside_root(path, workspace_root, shown=directory)
    return path


def check_inside_root(path: str, workspace_root: str | None, *, shown: str) -> None:
    if workspace_root:
        root = os.path.realpath(workspace_root)
        if os.path.commonpath([root, os.path.realpath(path)]) != root:
            raise WorkspaceError(f"directory {shown!r} is outside WORKSPACE_ROOT ({root}); use a path inside it")


def confirm_session_directory(reported: object, decided: str | None) -> None:
    """OpenCode created the session where the gateway decided, or WorkspaceError."""
    if decided is not None and reported != decided:
        raise WorkspaceError(
            f"OpenCode placed the session in {reported!r} instead of {decided!r}; the session was deleted. "
            "Use a plain directory name"
        )


def _refuse_reinterpreted(path: str) -> None:
    if _REINTERPRETED.search(path):
        raise WorkspaceError(
            f"directory {path!r} contains a backslash, a percent-escape or a control character, which OpenCode "
            "would read as a different path; rename it or pick another directory"
        )
