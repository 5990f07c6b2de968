"""Settings of scale-out: gateway replicas (docs/design.md), the pool of OpenCode workers
(workers.py, tasks/placement.py) and stopping a replica (drain.py)."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from ._topology import default_max_tasks, parse_peers
from ._values import given


class ScaleSettings(BaseModel):
    # Scale-out: several gateway replicas behind one balancer (see docs/design.md).
    gateway_id: str = Field("g0", pattern=r"^[A-Za-z0-9_-]{1,63}$")
    gateway_peers: str = ""
    request_state_key: SecretStr | None = None

    # Worker pool: tasks spread over several `opencode serve` (see workers.py, tasks/placement.py).
    opencode_workers: str = ""
    opencode_worker_url_template: str | None = None
    opencode_worker_count: int | None = Field(None, ge=1, le=1000)
    worker_max_tasks: int | None = Field(None, ge=1, le=100_000)
    schedule_wait_seconds: float = Field(30.0, ge=0, le=3600)
    # Stopping (see drain.py): which replica hosts which worker, and how long a stopping one drains.
    worker_gateways: str = ""
    shutdown_drain_seconds: float = Field(0.0, ge=0, le=86_400)

    @field_validator("gateway_peers")
    @classmethod
    def _peers(cls, value: str) -> str:
        parse_peers(value)
        return value

    @model_validator(mode="after")
    def _replicas_share_state(self) -> Self:
        peers = self.peer_map
        if peers and self.gateway_id not in peers:
            raise ValueError(f"GATEWAY_ID {self.gateway_id!r} must be one of the names in GATEWAY_PEERS")
        if len(peers) > 1 and not given(self.request_state_key):
            raise ValueError(
                "REQUEST_STATE_KEY is required with several GATEWAY_PEERS: every replica must unseal the "
                "input-required state another replica sealed (any shared random secret, e.g. openssl rand -hex 32)"
            )
        return self

    @property
    def peer_map(self) -> dict[str, str]:
        return parse_peers(self.gateway_peers)

    @property
    def pooled(self) -> bool:
        """A pool of workers is configured (else the one OPENCODE_BASE_URL)."""
        return bool(self.opencode_workers.strip() or self.opencode_worker_url_template)

    @property
    def worker_task_limit(self) -> int | None:
        """Running tasks per worker: WORKER_MAX_TASKS; unset, sized to the CPU for a configured
        pool and no limit for the single OPENCODE_BASE_URL (as before the pool existed)."""
        if self.worker_max_tasks is not None:
            return self.worker_max_tasks
        return default_max_tasks() if self.pooled else None
