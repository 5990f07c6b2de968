"""How the gateway sets up any OpenCode it runs (spawn mode, split pod, each sandbox): the
generated config, an environment that needs no network, isolated state directories with
the plugin pre-seeded, and where the binary is."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..config import Settings
from .pins import OPENCODE_VERSION

PLUGIN_VERSION = OPENCODE_VERSION  # the plugin is released in step with opencode
# No models.dev fetch, no self-update, no LSP downloads; an npm fetch fails at once.
OFFLINE_ENV = {
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "npm_config_registry": "http://127.0.0.1:9/",
}


def opencode_config(settings: Settings) -> dict[str, Any]:
    model = "gateway/{env:OPENCODE_MODEL_NAME}"
    config: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "model": model,
        "small_model": model,
        "enabled_providers": ["gateway"],
        "autoupdate": False,
        "share": "disabled",
        "provider": {
            "gateway": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Gateway LLM",
                "options": {"baseURL": "{env:LLM_PROXY_URL}", "apiKey": "{env:LLM_PROXY_TOKEN}"},
                "models": {
                    "{env:OPENCODE_MODEL_NAME}": {
                        "name": "{env:OPENCODE_MODEL_NAME}",
                        "tool_call": True,
                        "limit": {"context": 128000, "output": 8192},
                    }
                },
            }
        },
    }
    prices = (settings.model_cost_input_per_mtok, settings.model_cost_output_per_mtok)
    if any(p is not None for p in prices):
        # USD per million tokens: OpenCode prices each model step itself, so task costs are real.
        model_entry = config["provider"]["gateway"]["models"]["{env:OPENCODE_MODEL_NAME}"]
        model_entry["cost"] = {"input": prices[0] or 0, "output": prices[1] or 0}
    if settings.permission_policy == "allow":
        config["permission"] = {"*": "allow", "question": "deny"}
    elif settings.permission_policy == "deny":
        config["permission"] = {"question": "deny"}
    return config


def gateway_setting(name: str) -> bool:
    """Whether an environment variable is the gateway's (a setting, maybe a secret) rather
    than the machine's: such variables never reach OpenCode or its agent."""
    upper = name.upper()
    return upper.startswith(("OPENCODE_", "MCP_")) or name.lower() in Settings.model_fields


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "opencode-mcp-gateway"


# Where `make` installs the pinned opencode-ai, for a checkout installed in development mode.
REPO_BINARY = Path(__file__).resolve().parents[3] / ".tools/node_modules/opencode-linux-x64/bin/opencode"


def find_binary(configured: str | None) -> str:
    """OPENCODE_BIN if set; else `opencode` on PATH; else the copy `make` installed."""
    candidates = [configured] if configured else [shutil.which("opencode"), str(REPO_BINARY)]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    where = configured or "opencode on PATH"
    raise FileNotFoundError(f"OPENCODE_BIN: cannot run {where}; install opencode-ai or set OPENCODE_BIN")


def prepare_state(state: Path) -> dict[str, str]:
    """Isolated XDG dirs, group-writable (OpenShift runs an arbitrary UID in group 0)."""
    dirs = {
        "HOME": state / "home",
        "XDG_CONFIG_HOME": state / "config",
        "XDG_DATA_HOME": state / "data",
        "XDG_CACHE_HOME": state / "cache",
        "XDG_STATE_HOME": state / "state",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True, mode=0o775)
    plugin_dir = dirs["XDG_CONFIG_HOME"] / "opencode"
    (plugin_dir / "node_modules").mkdir(parents=True, exist_ok=True)
    lock = plugin_dir / "package-lock.json"
    if not lock.exists():
        lock.write_text(
            json.dumps(
                {"lockfileVersion": 3, "packages": {"": {"dependencies": {"@opencode-ai/plugin": PLUGIN_VERSION}}}}
            )
        )
    return {k: str(v) for k, v in dirs.items()}
