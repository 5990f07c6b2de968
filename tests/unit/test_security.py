from __future__ import annotations

from opencode_mcp_gateway.auth.exposure import exposure_refusal
from opencode_mcp_gateway.config import Settings, auth_methods


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_loopback_needs_no_authentication() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert exposure_refusal(settings(host=host)) is None


def test_other_addresses_need_authentication_or_an_explicit_opt_out() -> None:
    refusal = exposure_refusal(settings(host="0.0.0.0"))
    assert refusal is not None and "\n" not in refusal
    assert "MCP_BEARER_TOKEN" in refusal and "ALLOW_UNAUTHENTICATED=true" in refusal
    assert exposure_refusal(settings(host="10.0.0.7", mcp_bearer_token="t")) is None
    assert exposure_refusal(settings(host="0.0.0.0", allow_unauthenticated=True)) is None
    assert exposure_refusal(settings(host="0.0.0.0", mcp_bearer_token="  ")) is not None  # blank is no token


def test_configured_auth_names_the_settings() -> None:
    assert auth_methods(settings()) == []
    assert auth_methods(settings(mcp_bearer_token="t")) == ["MCP_BEARER_TOKEN"]


def test_every_secret_setting_is_kept_out_of_the_environ() -> None:
    """secret_env lists the secrets without importing pydantic (the re-exec comes first)."""
    from pydantic import SecretStr

    from opencode_mcp_gateway.secret_env import SECRET_SETTINGS

    typed_secret = {
        name.upper()
        for name, field in Settings.model_fields.items()
        if SecretStr in getattr(field.annotation, "__args__", ())
    }
    assert typed_secret == SECRET_SETTINGS
