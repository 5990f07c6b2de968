"""Sandboxes (issue 19): an `opencode serve` of its own per caller (SANDBOX=caller) or per
task (SANDBOX=task), inside an operating-system boundary, run as dynamic workers of the pool.

* `runtime`: the contract a runtime fulfils (find or start, stop, remove by name);
* `local`: bubblewrap on this machine, with `inside` (the relay that runs in the sandbox);
* `keys`: sandbox names, and the passwords and LLM tokens derived from them;
* `manager`: which sandbox a task needs, and each sandbox's life (idle stop, wake, limits),
  with `records` (what the gateway keeps about each, outside every sandbox), `listings`
  (a stopped sandbox's tasks, as `list_tasks` showed them when it stopped) and
  `directories` (which directory a caller may have its sandbox show);
* `assembly`: the runtime chosen by SANDBOX_RUNTIME (`build_runtime`), and the manager.

Arrows: fleet.sandboxes may import `fleet.worker`, `tasks`, `workspaces`, `opencode`,
`observability`, `primitives` and `config` (the arrows of `fleet`); `fleet.pool` and
`fleet.worker` import nothing of it (the pool sees the manager as `worker.Sandboxes`).
"""

from .assembly import build_manager, build_runtime, sandbox_llm_proxy, state_root
from .keys import SandboxKeys, is_sandbox_name
from .manager import SandboxesFull, SandboxManager, SandboxUnavailable
from .runtime import SandboxEndpoint, SandboxError, SandboxRuntime, SandboxSpec

__all__ = [
    "SandboxEndpoint",
    "SandboxError",
    "SandboxKeys",
    "SandboxManager",
    "SandboxRuntime",
    "SandboxSpec",
    "SandboxUnavailable",
    "SandboxesFull",
    "build_manager",
    "build_runtime",
    "is_sandbox_name",
    "sandbox_llm_proxy",
    "state_root",
]
