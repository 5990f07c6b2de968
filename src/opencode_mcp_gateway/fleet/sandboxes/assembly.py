"""Putting sandboxes together from the settings: the runtime, the keys, OpenCode's
environment, the LLM proxy they reach, and the manager.

`build_runtime` is the one place that chooses a runtime by SANDBOX_RUNTIME. The
`kubernetes` runtime lives in `kubernetes.py` (lightkube loads only when it is chosen).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...config import Settings
from ...opencode import EventHub, OpenCodeClient
from ...opencode.llm_proxy import LLMProxy
from ...opencode.setup import OFFLINE_ENV, default_state_dir, find_binary, opencode_config
from ..worker import Worker, build_worker
from .keys import SandboxKeys
from .local import LocalRuntime
from .manager import SandboxManager
from .runtime import SandboxEndpoint, SandboxRuntime, SandboxSpec

LLM_SOCKET = "llm.sock"


def state_root(settings: Settings) -> Path:
    """Where the sandboxes' state lives: OPENCODE_STATE_DIR/sandboxes."""
    base = Path(settings.opencode_state_dir) if settings.opencode_state_dir else default_state_dir()
    return base / "sandboxes"


KUBE_LLM_PROXY_PORT = 4097  # the chart's `<name>-llm` Service targets it


def build_runtime(settings: Settings) -> SandboxRuntime:
    """The runtime SANDBOX_RUNTIME names; raises SandboxError (one line) when there is none."""
    kind = settings.sandbox_runtime_kind
    if kind == "local":
        root = state_root(settings)
        return LocalRuntime(root, find_binary(settings.opencode_bin), root / LLM_SOCKET)
    from .kube_settings import kubernetes_runtime  # lightkube loads only for this runtime

    return kubernetes_runtime(settings)


def opencode_env(settings: Settings) -> dict[str, str]:
    """What each sandbox's OpenCode is given besides its password and token: none of it secret."""
    return {
        **OFFLINE_ENV,
        "OPENCODE_CONFIG_CONTENT": json.dumps(opencode_config(settings)),
        "OPENCODE_MODEL_NAME": settings.opencode_model_name or "",
        "OPENCODE_SERVER_USERNAME": settings.opencode_username,
        "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    }


def sandbox_llm_proxy(settings: Settings, keys: SandboxKeys) -> LLMProxy:
    """The model for every sandbox, each under its own token: on a Unix socket local sandboxes
    reach; for sandbox pods on the pod network at LLM_PROXY_PORT (the chart's `<name>-llm`
    Service spreads them over the replicas, each of which computes every sandbox's token)."""
    key = settings.opencode_api_key.get_secret_value() if settings.opencode_api_key else ""
    listen: dict[str, Any] = (
        # the NetworkPolicy admits only sandbox pods to this port
        {"host": "0.0.0.0", "port": settings.llm_proxy_port or KUBE_LLM_PROXY_PORT}
        if settings.sandbox_runtime_kind == "kubernetes"
        else {"unix_path": state_root(settings) / LLM_SOCKET}
    )
    return LLMProxy(settings.opencode_api_url or "", key, accepts=keys.accepts_llm_token, **listen)


def build_manager(settings: Settings, runtime: SandboxRuntime, keys: SandboxKeys) -> SandboxManager:
    def make_worker(spec: SandboxSpec, endpoint: SandboxEndpoint) -> Worker:
        client = OpenCodeClient(
            endpoint.url,
            username=settings.opencode_username,
            password=spec.opencode_password,
            timeout=settings.opencode_timeout_seconds,
            worker=spec.name,
            uds=endpoint.uds,
        )
        home = getattr(runtime, "home", None)
        if home is None:  # a runtime whose files the gateway cannot reach keeps the shared settings
            return build_worker(settings, spec.name, client, EventHub(client))
        # Repository work (clone, commit, push) happens here in the gateway, with the credentials,
        # in the sandbox's own area: its worktrees are the only ones its agent sees.
        area = home(spec.name)
        own = settings.model_copy(
            update={"workspaces_dir": str(area / "workspaces"), "workspace_dir": str(area / "work")}
        )
        return build_worker(own, spec.name, client, EventHub(client), home=str(area / "work"))

    return SandboxManager(settings, runtime, keys, state_root(settings), make_worker, env=opencode_env(settings))
