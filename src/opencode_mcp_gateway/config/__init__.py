"""Settings from the environment (and an optional `.env` file), validated at start-up.

Every setting is an environment variable with the same name in upper case. A bad value
stops start-up with one line that names the variable (see `load_settings`). The settings
come in groups, one module each: the gateway and its OpenCode (`_gateway`), who may call
(`_access`), the work (`_work`: budgets, repository workspaces), scale-out (`_scale`),
sandboxes (`_sandbox`), the kubernetes sandbox runtime (`_kube_sandbox`), completion
webhooks (`_webhooks`) and what a caller may add to a task (`_shaping`: attachments);
`Settings` joins them and checks what spans groups. Parsing that settings need lives here
too: who is who (`_topology`: workers, peers) and the split pod's rule (`_split_pod`).

Arrows: config imports nothing of the gateway; every package may import it.
"""

from __future__ import annotations

import os
from typing import Self

from pydantic import ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._access import AUTH_SETTINGS, AccessSettings, auth_methods
from ._gateway import GatewaySettings, PermissionPolicy
from ._kube_sandbox import KubeSandboxSettings
from ._sandbox import RuntimeKind, SandboxSettings, Scope, decide_runtime, decide_scope, sandbox_problem
from ._scale import ScaleSettings
from ._shaping import ShapingSettings
from ._split_pod import GATEWAY_ONLY, split_pod_problem
from ._topology import PEER_SEPARATOR, expand_template, hosts_by_ordinal, parse_worker_gateways, parse_workers
from ._values import ConfigError, describe_validation_error, given, is_loopback, shown_url
from ._webhooks import WebhookSettings
from ._work import WorkSettings

__all__ = [
    "AUTH_SETTINGS",
    "GATEWAY_ONLY",
    "PEER_SEPARATOR",
    "ConfigError",
    "PermissionPolicy",
    "Settings",
    "auth_methods",
    "describe_validation_error",
    "given",
    "is_loopback",
    "load_settings",
    "shown_url",
]


class Settings(
    GatewaySettings,
    AccessSettings,
    WorkSettings,
    ScaleSettings,
    SandboxSettings,
    KubeSandboxSettings,
    WebhookSettings,
    ShapingSettings,
    BaseSettings,
):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    @model_validator(mode="after")
    def _one_worker_pool(self) -> Self:
        template, count = self.opencode_worker_url_template, self.opencode_worker_count
        if self.opencode_workers.strip() and (template or count):
            raise ValueError("set OPENCODE_WORKERS or OPENCODE_WORKER_URL_TEMPLATE/_COUNT, not both")
        if bool(template) != bool(count):
            raise ValueError("OPENCODE_WORKER_URL_TEMPLATE and OPENCODE_WORKER_COUNT go together: set both or neither")
        try:
            pool = expand_template(template, count) if template and count else parse_workers(self.opencode_workers)
        except ValueError as exc:
            name = "OPENCODE_WORKER_URL_TEMPLATE" if template else "OPENCODE_WORKERS"
            raise ValueError(f"{name}: {exc}") from None
        if pool and self.spawn_opencode and is_loopback(self.opencode_listen_host):
            # The chart's StatefulSet: each pod spawns one worker of the pool, which the other
            # replicas must reach, so it listens on the pod's address (under OPENCODE_PASSWORD).
            raise ValueError(
                "with --spawn-opencode and a pool, this pod's OpenCode is one of the workers: set "
                "OPENCODE_LISTEN_HOST (e.g. 0.0.0.0) so the other gateways reach it"
            )
        return self

    @model_validator(mode="after")
    def _hosts_are_known(self) -> Self:
        if not self.worker_gateways.strip():
            return self
        try:
            hosts = self.worker_hosts
        except ValueError as exc:
            raise ValueError(f"WORKER_GATEWAYS: {exc}") from None
        workers, peers = self.worker_urls, self.peer_map
        for worker, gateway in hosts.items():
            if worker not in workers:
                raise ValueError(f"WORKER_GATEWAYS names worker {worker[:20]!r}, which is not one of the workers")
            if gateway not in peers:
                raise ValueError(f"WORKER_GATEWAYS names gateway {gateway[:64]!r}, which is not one of GATEWAY_PEERS")
        return self

    @model_validator(mode="after")
    def _split_pod(self) -> Self:
        problem = split_pod_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _sandboxes(self) -> Self:
        problem = sandbox_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    # Derived values that span groups ------------------------------------------------------
    @property
    def sandbox_scope(self) -> Scope:
        """`caller`, `task` or `off`: SANDBOX, or its default (config/_sandbox.py)."""
        return decide_scope(self)

    @property
    def sandboxed(self) -> bool:
        return self.sandbox_scope != "off"

    @property
    def sandbox_runtime_kind(self) -> RuntimeKind:
        return decide_runtime(self.sandbox_runtime)

    @property
    def worker_urls(self) -> dict[str, str]:
        """The OpenCode workers by name, in order (one, `w0`, unless a pool is configured)."""
        template, count = self.opencode_worker_url_template, self.opencode_worker_count
        if template and count:
            return expand_template(template, count)
        return parse_workers(self.opencode_workers) or {"w0": self.opencode_base_url}

    @property
    def worker_hosts(self) -> dict[str, str]:
        """Worker name → the GATEWAY_PEERS name of the replica that hosts it (its pod's gateway)."""
        if self.worker_gateways.strip():
            return parse_worker_gateways(self.worker_gateways)
        if self.opencode_worker_url_template and self.peer_map:
            return hosts_by_ordinal(self.worker_urls, self.peer_map)
        return {}

    @property
    def resource_url(self) -> str | None:
        """The protected resource (RFC 9728): what OAuth tokens are issued for."""
        return self.public_url + self.mcp_path if self.public_url else None

    @property
    def workspaces_path(self) -> str:
        """Where cached clones and task worktrees live: on the volume the OpenCode worker sees."""
        if self.workspaces_dir:
            return self.workspaces_dir
        base = self.workspace_root or self.workspace_dir
        if base:
            return os.path.join(base, ".opencode-workspaces")
        return os.path.join(os.path.expanduser("~"), ".local", "share", "opencode-mcp-gateway", "workspaces")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; raises ConfigError with a one-line reason."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
