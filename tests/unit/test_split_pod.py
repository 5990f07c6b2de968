"""The split pod's two sides, without starting anything: `opencode-mcp-gateway opencode`
(OpenCode alone, none of the gateway's secrets) and a gateway serving it the LLM proxy."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from opencode_mcp_gateway import cli
from opencode_mcp_gateway.config import ConfigError, load_settings
from opencode_mcp_gateway.opencode.llm_proxy import LLMProxy
from opencode_mcp_gateway.opencode.supervisor import OpenCodeSupervisor

OPENCODE_SIDE: dict[str, Any] = {
    "_env_file": None,
    "opencode_only": True,
    "opencode_model_name": "m1",
    "llm_proxy_port": 4097,
    "llm_proxy_token": "proxy-token",
    "opencode_password": "oc-password",
}


def test_opencode_alone_gets_its_model_through_the_gateways_proxy(tmp_path: Path) -> None:
    settings = load_settings(
        **OPENCODE_SIDE, opencode_state_dir=str(tmp_path / "state"), opencode_listen_host="0.0.0.0"
    )
    supervisor = OpenCodeSupervisor(settings)
    env = supervisor.child_env()
    assert env["LLM_PROXY_URL"] == "http://127.0.0.1:4097/v1" and env["LLM_PROXY_TOKEN"] == "proxy-token"
    assert env["OPENCODE_SERVER_PASSWORD"] == "oc-password" and env["OPENCODE_MODEL_NAME"] == "m1"
    assert json.loads(env["OPENCODE_CONFIG_CONTENT"])["enabled_providers"] == ["gateway"]
    assert supervisor.command()[2:] == ["--hostname", "0.0.0.0", "--port", "4096"]
    with pytest.raises(RuntimeError, match="runs in the gateway's container"):
        _ = supervisor.llm_proxy  # this process serves no proxy: it has no key to add


@pytest.mark.parametrize(
    ("secret", "value"),
    [
        ("opencode_api_key", "sk-real"),
        ("git_credentials_file", "/etc/opencode-gateway/git/credentials"),
        ("mcp_api_keys_file", "/etc/keys"),
        ("mcp_bearer_token", "bearer-token-value"),
        ("request_state_key", "state-key-value"),
    ],
)
def test_opencode_alone_refuses_the_gateways_secrets(secret: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{secret.upper()}: not for the OpenCode container") as refused:
        load_settings(**OPENCODE_SIDE, **{secret: value})
    assert value not in str(refused.value)


def test_opencode_alone_names_what_it_misses() -> None:
    given = {k: v for k, v in OPENCODE_SIDE.items() if k not in ("llm_proxy_token", "opencode_password")}
    with pytest.raises(ConfigError, match="LLM_PROXY_TOKEN, OPENCODE_PASSWORD: required by `opencode-mcp-gateway"):
        load_settings(**given)


def test_a_gateway_serving_the_proxy_needs_the_provider_and_the_token() -> None:
    with pytest.raises(ConfigError, match="OPENCODE_API_KEY, LLM_PROXY_TOKEN: required with LLM_PROXY_PORT"):
        load_settings(_env_file=None, llm_proxy_port=4097, opencode_api_url="http://llm.test/v1")
    settings = load_settings(
        _env_file=None,
        llm_proxy_port=4097,
        opencode_api_url="http://llm.test/v1",
        opencode_api_key="sk-real",
        llm_proxy_token="proxy-token",
    )
    assert not settings.spawn_opencode and settings.opencode_base_url == "http://127.0.0.1:4096"


def test_the_proxy_listens_on_the_given_port_under_the_given_token() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proxy = LLMProxy("http://llm.test/v1", "sk-real", port=port, token="proxy-token")
    proxy.close()
    assert proxy.base_url == f"http://127.0.0.1:{port}/v1" and proxy.token == "proxy-token"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(OSError, match=f"LLM_PROXY_PORT: cannot listen on 127.0.0.1:{port}"):
            LLMProxy("http://llm.test/v1", "sk-real", port=port).close()


def test_the_command_line_runs_opencode_alone_or_refuses_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("SPAWN_OPENCODE", "true")  # as the image sets it: the mode overrides it
    for name, value in OPENCODE_SIDE.items():
        if not name.startswith("_"):
            monkeypatch.setenv(name.upper(), str(value))
    monkeypatch.setenv("GIT_CREDENTIALS_FILE", "/etc/opencode-gateway/git/credentials")
    with pytest.raises(SystemExit) as stopped:
        cli.main(["opencode"])
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("opencode-mcp-gateway: invalid configuration: GIT_CREDENTIALS_FILE: not for the OpenCode")
    assert cli.parse_args(["--no-spawn-opencode"]).spawn_opencode is False
    assert cli.parse_args([]).mode == "gateway" and cli.parse_args([]).spawn_opencode is None


def test_a_taken_proxy_port_stops_the_gateway_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(
            _env_file=None,
            host="127.0.0.1",
            llm_proxy_port=port,
            opencode_api_url="http://llm.test/v1",
            opencode_api_key="sk-real",
            llm_proxy_token="proxy-token",
        )
        with pytest.raises(SystemExit) as stopped:
            cli.serve(settings)
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"opencode-mcp-gateway: LLM_PROXY_PORT: cannot listen on 127.0.0.1:{port} (Address already in use)"
