"""The fleet: which OpenCode runs a task. The pool of workers (`pool`: one `TaskService` per
worker, a task id names its worker) and where new tasks go (`placement`: load, readiness,
the schedule wait).

Arrows: fleet may import `tasks`, `opencode`, `observability`, `primitives` and `config`;
never `tools`, `edge` or the entry points. The worker URLs themselves are settings
(`config/_topology.py`).
"""

from .placement import Placement, PoolFull, WorkerLoad
from .pool import TaskPool, Worker, WorkerDown, build_worker

__all__ = ["Placement", "PoolFull", "TaskPool", "Worker", "WorkerDown", "WorkerLoad", "build_worker"]
