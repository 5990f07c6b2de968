"""Repository and directory workspaces: where a task's files are, and how git runs on them.

* `directory`: the `directory` a task names, checked against WORKSPACE_ROOT.
* `git`: the one way git runs (no hooks, drivers or prompts; credentials on a pipe).
* `repos`: cached clones, allow-list and ref checks.
* `manager`: a task's worktree and branch from start to push (`Workspaces`).
* `record`: the workspace as the session's metadata records it (`Record`), and a `Plan`.
* `upkeep`: what runs while nobody calls: settling idle sessions, pushing again what failed
  (on `push_retries`' schedule), removing idle worktrees.
* `branch_diff`: what a branch changed, for `get_task_diff`.

Every refusal is a `WorkspaceError` (`RepositoryError` for git and the network).
Arrows: workspaces may import `opencode`, `primitives` and `config`; never `tasks`,
`fleet`, `tools`, `edge` or the entry points.
"""

from .directory import WorkspaceError, check_inside_root, confirm_session_directory, resolve_directory
from .git import Git, RepositoryError, find_credential, strip_userinfo
from .manager import Workspaces
from .record import TRAILER, Plan, Record
from .repos import Repos, Tree, check_ref_name, check_repository, clean_url, file_lock

__all__ = [
    "TRAILER",
    "Git",
    "Plan",
    "Record",
    "Repos",
    "RepositoryError",
    "Tree",
    "WorkspaceError",
    "Workspaces",
    "check_inside_root",
    "check_ref_name",
    "check_repository",
    "clean_url",
    "confirm_session_directory",
    "file_lock",
    "find_credential",
    "resolve_directory",
    "strip_userinfo",
]
