"""MCP Tasks for `run_coding_task`: the 2026-07-28 extension `io.modelcontextprotocol/tasks`
(SEP-2663) and the experimental tasks of 2025-11-25 (SEP-1686).

A client that asks for a task gets a handle at once and follows it with `tasks/*`. The
handle IS the gateway's task id, so the task tools accept it and `tasks/get` reads a task
started by `run_coding_task_async`. Nothing is kept here: every `tasks/*` request reads the
task from OpenCode, like every other read, so any replica answers and a restart loses none.
A request that does not ask for a task is served as before.

* `shapes`: the gateway's task view as the spec's `Task`, per era (status mapping, fields);
* `extension`: the SDK `Extension`: advertises the extension, serves `tasks/get`,
  `tasks/update`, `tasks/cancel` (and `tasks/result`, `tasks/list` of 2025-11-25), and turns
  a 2026-07-28 `run_coding_task` that declares the extension into a task;
* `legacy`: what 2025-11-25 needs above the SDK's result sieve (the `tasks` capability at
  initialize, `execution.taskSupport` in tools/list, the `task` parameter of tools/call);
* `mode`: how run_coding_task is told to return at once (one flag, so task mode takes
  every argument through the tool's own parsing and submit path).

WHEN THE SDK SHIPS TASKS (the MCP Python SDK 2.x implements neither era as of 2.3.0):
delete this package, the `backgrounded()` branch in `tools/running.py` and the
`TasksExtension`/`attach` lines in `tools/server.py`, and give the SDK a task store that reads the gateway's tasks (the
task id is the gateway's). tests/e2e/test_mcp_tasks.py states the behaviour to keep.
"""

from .extension import TasksExtension
from .mode import backgrounded

__all__ = ["TasksExtension", "backgrounded"]
