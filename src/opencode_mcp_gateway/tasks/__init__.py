"""The task core: what a coding task is and every operation on one, over one OpenCode.

Ids (`ids`), turn-state rules (`state`), submitting (`submitter`), reading (`reader`),
waiting (`waiter`), steering (`control`: abort, answers), paging (`pages`), permissions and
questions (`permissions`), budgets and the watcher of started tasks (`budget`, `tracker`),
ownership and listing, the result shapes (`views`), all behind `TaskService` (one per
OpenCode). Every refusal is a `TaskError`.

Arrows: tasks may import `workspaces`, `opencode`, `observability`, `primitives` and
`config`; never `fleet`, `tools`, `edge` or the entry points (they import tasks).
"""

from .broker import PermissionBroker
from .catalog import Catalog, UnknownChoice
from .errors import TaskError
from .ids import InvalidTaskId, TaskId, parse_task_id
from .service import TaskOperations, TaskService
from .submitter import TaskRequest
from .waiter import Asker, Reporter

__all__ = [
    "Asker",
    "Catalog",
    "InvalidTaskId",
    "PermissionBroker",
    "Reporter",
    "TaskError",
    "TaskId",
    "TaskOperations",
    "TaskRequest",
    "TaskService",
    "UnknownChoice",
    "parse_task_id",
]
