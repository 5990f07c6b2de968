"""The task layer: ids, turn-state rules, waiting, progress, permissions, bounded output."""

from .catalog import Catalog, UnknownChoice
from .ids import InvalidTaskId, TaskId, parse_task_id
from .permissions import PermissionBroker
from .service import Asker, Reporter, TaskError, TaskService
from .workspace import WorkspaceError

__all__ = [
    "Asker",
    "Catalog",
    "InvalidTaskId",
    "PermissionBroker",
    "Reporter",
    "TaskError",
    "TaskId",
    "TaskService",
    "UnknownChoice",
    "WorkspaceError",
    "parse_task_id",
]
