"""The fleet: which OpenCode runs a task. A worker (`worker`: one OpenCode and the machinery
kept for it), the pool of workers (`pool`: a task id names its worker), where new tasks go
(`placement`: load, readiness, the schedule wait), and sandboxes, workers made as they are
needed, one per caller or task (`sandboxes/`).

Arrows: fleet may import `tasks`, `opencode`, `observability`, `primitives` and `config`;
never `tools`, `edge` or the entry points. The worker URLs themselves are settings
(`config/_topology.py`).
"""

from .placement import Placement, PoolFull, WorkerLoad
from .pool import TaskPool, WorkerDown
from .worker import Worker, build_worker

__all__ = ["Placement", "PoolFull", "TaskPool", "Worker", "WorkerDown", "WorkerLoad", "build_worker"]
