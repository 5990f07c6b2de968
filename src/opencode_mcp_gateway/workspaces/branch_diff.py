"""The change an isolated task made: its worktree (or branch) against its base commit.

Shaped like OpenCode's per-turn diff (`file`, `patch`, `additions`, `deletions`,
`status`), so the same bounds and views apply. Uncommitted and untracked files count:
they are staged into a throw-away index, never the worktree's own.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

from .git import Git
from .repos import Tree

_STATUS = {"A": "added", "D": "deleted"}


def branch_diff(git: Git, tree: Tree, base: str, branch: str | None) -> list[dict[str, Any]]:
    if not tree.exists():  # the janitor removed the worktree: the branch holds the work
        if not branch:
            return []
        return _diff(git, ["diff", "--no-renames", base, f"refs/heads/{branch}"], {"git_dir": tree.common})
    with tempfile.TemporaryDirectory(prefix="gateway-index-") as scratch:
        at: dict[str, Any] = {"git_dir": tree.admin, "work_tree": tree.path, "cwd": tree.path}
        at["extra_env"] = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
        git.check(["read-tree", "HEAD"], **at)
        git.check(["add", "-A"], **at)
        return _diff(git, ["diff", "--cached", "--no-renames", base], at)


def _diff(git: Git, command: list[str], at: dict[str, Any]) -> list[dict[str, Any]]:
    command = [command[0], "--no-ext-diff", "--no-textconv", *command[1:]]  # no program the agent named
    names = git.check([*command, "--name-status", "-z"], **at).split("\0")
    counts = git.check([*command, "--numstat", "-z"], **at).split("\0")
    patch = git.check([*command, "-p", "--binary"], **at)
    patches = [p for p in re.split(r"(?m)^(?=diff --git )", patch) if p]
    files = []
    for i in range(0, len(names) - 1, 2):
        status, path = names[i], names[i + 1]
        added, deleted, _ = counts[i // 2].split("\t", 2)
        files.append(
            {
                "file": path,
                "status": _STATUS.get(status[:1], "modified"),
                "additions": int(added) if added.isdigit() else 0,
                "deletions": int(deleted) if deleted.isdigit() else 0,
                "patch": patches[i // 2] if i // 2 < len(patches) else "",
            }
        )
    return files
