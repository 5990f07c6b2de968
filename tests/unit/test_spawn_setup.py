"""Spawn mode's set-up and the command line, without starting anything: the generated
OpenCode config, the child's environment, the state directories and the start-up errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import opencode_mcp_gateway
from opencode_mcp_gateway import cli
from opencode_mcp_gateway.config import Settings
from opencode_mcp_gateway.opencode.pins import OPENCODE_VERSION
from opencode_mcp_gateway.opencode.setup import find_binary, opencode_config, prepare_state
from opencode_mcp_gateway.opencode.supervisor import OpenCodeSupervisor

PROVIDER: dict[str, Any] = {
    "opencode_api_url": "http://llm.test/v1",
    "opencode_api_key": "sk-secret-key",
    "opencode_model_name": "m1",
}


def spawn_settings(tmp_path: Path, **overrides: Any) -> Settings:
    options: dict[str, Any] = {"_env_file": None, "spawn_opencode": True, "opencode_state_dir": str(tmp_path / "state")}
    return Settings(**options, **PROVIDER, **overrides)


@pytest.mark.parametrize(
    ("policy", "permission"),
    [("allow", {"*": "allow", "question": "deny"}), ("deny", {"question": "deny"}), ("ask", None)],
)
def test_the_opencode_config_follows_the_policy(tmp_path: Path, policy: str, permission: object) -> None:
    config = opencode_config(spawn_settings(tmp_path, permission_policy=policy))
    assert config.get("permission") == permission
    assert config["enabled_providers"] == ["gateway"] and config["model"] == "gateway/{env:OPENCODE_MODEL_NAME}"
    # OpenCode reaches the model through the gateway's LLM proxy, with a per-start token
    options = config["provider"]["gateway"]["options"]
    assert options == {"baseURL": "{env:LLM_PROXY_URL}", "apiKey": "{env:LLM_PROXY_TOKEN}"}


def test_secrets_reach_opencode_only_through_its_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_BEARER_TOKEN", "not-for-opencode")
    supervisor = OpenCodeSupervisor(spawn_settings(tmp_path))
    supervisor.llm_proxy.close()
    env = supervisor.child_env()
    assert "sk-secret-key" not in json.dumps(env)  # the real key stays in the gateway's proxy
    proxy = supervisor.llm_proxy
    assert env["LLM_PROXY_TOKEN"] == proxy.token and env["LLM_PROXY_URL"] == proxy.base_url
    assert env["OPENCODE_SERVER_PASSWORD"] == supervisor.password and len(supervisor.password) >= 24
    assert "MCP_BEARER_TOKEN" not in env and env["OPENCODE_DISABLE_MODELS_FETCH"] == "1"
    assert env["HOME"] == str(tmp_path / "state" / "home")


def test_the_plugin_opencode_would_fetch_is_pre_seeded_at_the_pinned_version(tmp_path: Path) -> None:
    dirs = prepare_state(tmp_path)
    lock = Path(dirs["XDG_CONFIG_HOME"]) / "opencode" / "package-lock.json"
    assert json.loads(lock.read_text())["packages"][""]["dependencies"] == {"@opencode-ai/plugin": OPENCODE_VERSION}
    assert (lock.parent / "node_modules").is_dir()


def test_a_missing_binary_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"OPENCODE_BIN: cannot run {tmp_path}/none"):
        find_binary(str(tmp_path / "none"))
    supervisor = OpenCodeSupervisor(spawn_settings(tmp_path, opencode_bin="/bin/true"))
    supervisor.llm_proxy.close()
    assert supervisor.command() == ["/bin/true", "serve", "--hostname", "127.0.0.1", "--port", "4096"]


def test_the_command_line_stops_on_bad_settings_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("PORT", "99999")
    with pytest.raises(SystemExit) as stopped:
        cli.main([])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.startswith("opencode-mcp-gateway: invalid configuration: PORT:")
    monkeypatch.delenv("PORT")
    for name, value in PROVIDER.items():
        monkeypatch.setenv(name.upper(), value)
    monkeypatch.setenv("OPENCODE_BIN", str(tmp_path / "missing"))
    with pytest.raises(SystemExit):
        cli.main(["--spawn-opencode"])
    assert "OPENCODE_BIN: cannot run" in capsys.readouterr().err


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--version"])
    assert capsys.readouterr().out.strip() == f"opencode-mcp-gateway {opencode_mcp_gateway.__version__}"


def test_opencode_listens_on_loopback_unless_told_and_then_needs_a_password(tmp_path: Path) -> None:
    local = OpenCodeSupervisor(spawn_settings(tmp_path))
    local.llm_proxy.close()
    assert local.command()[2:4] == ["--hostname", "127.0.0.1"]
    with pytest.raises(ValueError, match=r"OPENCODE_PASSWORD is required with OPENCODE_LISTEN_HOST=0\.0\.0\.0"):
        spawn_settings(tmp_path, opencode_listen_host="0.0.0.0")
    shared = OpenCodeSupervisor(spawn_settings(tmp_path, opencode_listen_host="0.0.0.0", opencode_password="pw"))
    shared.llm_proxy.close()
    assert shared.command()[2:4] == ["--hostname", "0.0.0.0"] and shared.password == "pw"
