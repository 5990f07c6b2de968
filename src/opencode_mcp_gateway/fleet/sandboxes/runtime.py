"""What a sandbox runtime does: find or start, stop and remove sandboxes by name.

The contract between the sandbox manager (fleet/sandboxes/manager.py: which sandbox a task
needs, lifecycle, limits) and the runtimes that run one (`local`: bubblewrap processes on
this machine; `kubernetes`: a pod per sandbox). A runtime knows nothing of tasks or callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Scope = Literal["caller", "task"]


class SandboxError(Exception):
    """A sandbox could not be found, started, stopped or removed; the message says why."""


@dataclass(frozen=True)
class SandboxSpec:
    name: str  # DNS-1123 label (a-z, 0-9, -), at most 50 characters, unique per sandbox
    scope: Scope
    owner_hash: str  # a hash of the owning identity, never the name itself (labels are visible)
    opencode_password: str  # the server password of this sandbox's `opencode serve`
    llm_token: str  # the LLM-proxy token valid for this sandbox only
    env: dict[str, str] = field(default_factory=dict)  # more, non-secret, environment for OpenCode
    # Host directories the caller named (under WORKSPACE_ROOT), shown read-write at the same path.
    # Added after the first version of this contract, with a default: runtimes that ignore it still fit.
    directories: tuple[str, ...] = ()


@dataclass(frozen=True)
class SandboxEndpoint:
    name: str
    url: str  # where the gateway reaches this sandbox's `opencode serve` (http://host:port)
    uds: str | None = None  # a Unix socket to connect through instead of url's host:port


class SandboxRuntime(Protocol):
    kind: str  # "local" or "kubernetes"

    def problem(self) -> str | None:
        """Why this runtime cannot work here (None: it can). Checked once at start-up."""

    async def ensure(self, spec: SandboxSpec) -> SandboxEndpoint:
        """Find the sandbox or create and start it; return once its OpenCode answers
        GET /global/health. Idempotent, and safe when two callers (or two gateway replicas)
        race for the same name: they end with one sandbox. Raises SandboxError."""

    async def stop(self, name: str) -> None:
        """Stop its processes (idle); keep its data (sessions, worktrees) for the next ensure."""

    async def remove(self, name: str) -> None:
        """Stop it and delete all of it (a task-scope sandbox past its retention)."""

    async def states(self) -> dict[str, str]:
        """The sandboxes this runtime holds, name -> "starting", "running" or "stopped"."""
