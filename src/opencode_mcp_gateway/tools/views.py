"""Results that only the MCP surface has: the agent list and the health report."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..tasks.views import OpenCodeHealth, SandboxHealth, WorkerHealth


class Agent(BaseModel):
    name: str
    description: str | None = None
    mode: str | None = Field(default=None, description="primary (usable as agent), subagent or all")


class AgentsView(BaseModel):
    agents: list[Agent]
    default_agent: str


class HealthView(BaseModel):
    gateway: str = "ok"
    version: str
    opencode: OpenCodeHealth = Field(description="healthy while at least one worker answers")
    event_stream_connected: bool
    permission_policy: str
    workers: list[WorkerHealth] = Field(default_factory=list, description="every OpenCode worker of this gateway")
    sandboxes: list[SandboxHealth] | None = Field(
        default=None,
        description="with SANDBOX=caller or task, for the admin scope: every sandbox and its state",
        exclude_if=lambda value: value is None,  # SANDBOX=off: the report reads as before
    )
