"""Settings of one gateway and its OpenCode: the MCP endpoint, OpenCode's API, task defaults,
spawn mode and the chart's two-container pod."""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from ._values import given, is_loopback, shown_url

PermissionPolicy = Literal["allow", "deny", "ask"]


class GatewaySettings(BaseModel):
    # Northbound: the MCP endpoint.
    port: int = Field(8080, ge=1, le=65535)
    host: str = "0.0.0.0"
    mcp_path: str = "/mcp"
    allowed_hosts: str = ""

    # Southbound: OpenCode's HTTP API.
    opencode_base_url: str = "http://127.0.0.1:4096"
    opencode_username: str = "opencode"
    opencode_password: SecretStr | None = None
    opencode_timeout_seconds: float = Field(30.0, gt=0)

    # Task defaults.
    default_agent: str = "build"
    default_model: str | None = None
    session_title_prefix: str = "OCP Gateway"
    task_timeout_seconds: float = Field(600.0, gt=0, le=86_400)
    permission_policy: PermissionPolicy = "allow"
    input_timeout_seconds: float = Field(600.0, gt=0)
    workspace_root: str | None = None
    max_output_bytes: int = Field(60_000, ge=2_000, le=10_000_000)
    progress_interval_seconds: float = Field(10.0, gt=0, le=60)

    # Spawn mode: the gateway runs `opencode serve` itself.
    spawn_opencode: bool = False
    opencode_api_url: str | None = None
    opencode_api_key: SecretStr | None = None
    opencode_model_name: str | None = None
    opencode_bin: str | None = None
    workspace_dir: str | None = None
    opencode_state_dir: str | None = None
    # Where the spawned OpenCode listens. Loopback unless other replicas must reach this
    # pod's worker (the chart's StatefulSet); then OPENCODE_PASSWORD guards it.
    opencode_listen_host: str = "127.0.0.1"
    # The chart's pod: OpenCode in a container of its own (`opencode-mcp-gateway opencode`, which
    # sets OPENCODE_ONLY), the gateway reaching it as an external OpenCode and serving it the LLM
    # proxy on this loopback port, under this token (both containers get the same two).
    opencode_only: bool = False
    llm_proxy_port: int | None = Field(None, ge=1, le=65535)
    llm_proxy_token: SecretStr | None = None

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("mcp_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.rstrip("/") == "" or " " in value:
            raise ValueError(f"must be a path with a leading slash such as /mcp (got {value!r})")
        return value.rstrip("/")

    @field_validator("opencode_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:4096 (got {shown_url(value)!r})")
        return value.rstrip("/")

    @field_validator("opencode_api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if value is not None and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname):
            raise ValueError(f"must be an http(s) URL such as https://api.example.com/v1 (got {shown_url(value)!r})")
        return value

    @field_validator("default_model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if value.count("/") < 1 or value.startswith("/") or value.endswith("/"):
            raise ValueError(f"must be provider/model, such as anthropic/claude-sonnet-4 (got {value!r})")
        return value

    @model_validator(mode="after")
    def _spawn_needs_provider(self) -> Self:
        if self.spawn_opencode:
            missing = [
                name.upper()
                for name in ("opencode_api_url", "opencode_api_key", "opencode_model_name")
                if not given(getattr(self, name))
            ]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required with --spawn-opencode "
                    "(set them in the environment or a .env file: the OpenAI-compatible provider's base URL, "
                    "API key and model name)"
                )
            base = urlsplit(self.opencode_base_url)
            if base.scheme != "http" or not is_loopback(base.hostname or ""):
                raise ValueError(
                    "OPENCODE_BASE_URL must be a loopback http URL such as http://127.0.0.1:4096 "
                    "with --spawn-opencode, since the gateway starts OpenCode there"
                )
            if not is_loopback(self.opencode_listen_host) and not given(self.opencode_password):
                raise ValueError(
                    f"OPENCODE_PASSWORD is required with OPENCODE_LISTEN_HOST={self.opencode_listen_host}: "
                    "OpenCode is then reachable from the network, and every gateway needs the same password"
                )
        return self

    @property
    def allowed_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]

    @property
    def binds_loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def opencode_port(self) -> int:
        parts = urlsplit(self.opencode_base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)
