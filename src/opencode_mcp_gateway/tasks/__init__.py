"""The task layer: ids, turn-state rules, submitting, reading, waiting, steering, paging."""

from .catalog import Catalog, UnknownChoice
from .errors import TaskError
from .ids import InvalidTaskId, TaskId, parse_task_id
from .permissions import PermissionBroker
from .service import TaskOperations, TaskService
from .submitter import TaskRequest
from .waiter import Asker, Reporter
from .workspace import WorkspaceError

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
    "WorkspaceError",
    "parse_task_id",
]
