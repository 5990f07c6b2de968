from __future__ import annotations

import pytest

from opencode_mcp_gateway.config import ConfigError, load_settings
from opencode_mcp_gateway.opencode import redact_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("OPENCODE_", "MCP_", "PORT", "HOST", "ALLOWED_", "SPAWN_", "PERMISSION_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]


def test_defaults_match_the_documented_table() -> None:
    s = load_settings()
    assert (s.port, s.host, s.mcp_path, s.opencode_base_url) == (8080, "0.0.0.0", "/mcp", "http://127.0.0.1:4096")
    assert (s.opencode_username, s.default_agent, s.session_title_prefix) == ("opencode", "build", "OCP Gateway")
    assert s.task_timeout_seconds == 600 and s.permission_policy == "allow" and s.input_timeout_seconds == 600
    assert s.mcp_bearer_token is None and s.default_model is None and not s.allowed_host_list


def test_secrets_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCODE_API_KEY", "sk-very-secret")
    monkeypatch.setenv("PORT", "0")
    with pytest.raises(ConfigError) as err:
        load_settings(spawn_opencode=True)
    assert "PORT" in str(err.value) and "sk-very-secret" not in str(err.value)
    assert "\n" not in str(err.value)


def test_spawn_mode_needs_a_loopback_opencode_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "OPENCODE_API_URL": "http://x/v1",
        "OPENCODE_API_KEY": "k",
        "OPENCODE_MODEL_NAME": "m",
        "OPENCODE_BASE_URL": "http://opencode.internal:4096",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="OPENCODE_BASE_URL"):
        load_settings(spawn_opencode=True)


def test_allowed_hosts_are_split_and_lowered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", " GW.example.com , localhost:8080,,")
    assert load_settings().allowed_host_list == ["gw.example.com", "localhost:8080"]


def test_spawn_mode_names_every_missing_provider_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCODE_MODEL_NAME", "m")
    with pytest.raises(ConfigError) as err:
        load_settings(spawn_opencode=True)
    assert "OPENCODE_API_URL, OPENCODE_API_KEY are required" in str(err.value)
    monkeypatch.setenv("OPENCODE_API_KEY", "  ")
    with pytest.raises(ConfigError, match="OPENCODE_API_URL, OPENCODE_API_KEY are required"):
        load_settings(spawn_opencode=True)


def test_credentials_in_urls_are_redacted_for_display() -> None:
    assert redact_url("http://gw:s3cret@opencode:4096") == "http://opencode:4096"
    assert redact_url("http://127.0.0.1:4096") == "http://127.0.0.1:4096"


def test_security_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.max_sessions, s.max_sessions_per_client, s.session_idle_timeout_seconds) == (1000, 100, 1800)
    assert s.allow_unauthenticated is False and s.allowed_origin_list == []
    monkeypatch.setenv("ALLOWED_ORIGINS", " https://app.example.com ,,http://localhost:3000")
    assert load_settings().allowed_origin_list == ["https://app.example.com", "http://localhost:3000"]


def test_one_client_cannot_be_allowed_every_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_SESSIONS", "10")
    monkeypatch.setenv("MAX_SESSIONS_PER_CLIENT", "10")
    with pytest.raises(ConfigError, match="MAX_SESSIONS_PER_CLIENT"):
        load_settings()


@pytest.mark.parametrize("url", ["ftp://u:SECRET@h:1", "http://u:SECRET@", "u:SECRET@h:4096", "ftp://u:S/E#C@RET@h"])
def test_invalid_urls_are_shown_without_credentials(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENCODE_BASE_URL", "OPENCODE_API_URL"):
        monkeypatch.setenv(name, url)
        with pytest.raises(ConfigError, match=name) as err:
            load_settings()
        assert "SECRET" not in str(err.value) and "RET" not in str(err.value)
        monkeypatch.delenv(name)


@pytest.mark.parametrize("value", ["app.example.com", "https://app.example.com/", "https://u@app.example.com", "*"])
def test_allowed_origins_must_be_origins(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", f"https://ok.example.com,{value}")
    with pytest.raises(ConfigError, match="ALLOWED_ORIGINS"):
        load_settings()
