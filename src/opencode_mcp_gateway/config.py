"""Settings from the environment (and an optional `.env` file), validated at start-up.

Every setting is an environment variable with the same name in upper case. A bad value
stops start-up with one line that names the variable (see `load_settings`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PermissionPolicy = Literal["allow", "deny", "ask"]


class ConfigError(Exception):
    """Configuration that cannot work; the message names the variable to fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Northbound: the MCP endpoint.
    port: int = Field(8080, ge=1, le=65535)
    host: str = "0.0.0.0"
    mcp_path: str = "/mcp"
    allowed_hosts: str = ""
    mcp_bearer_token: SecretStr | None = None

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

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Repository workspaces: tasks on a repository (or isolated) get their own worktree and branch.
    repository_allowlist: str = ""
    git_credentials_file: str | None = None
    git_commit_author: str = "OpenCode Gateway <opencode-gateway@localhost>"
    workspace_ttl_hours: float = Field(72.0, gt=0)
    workspaces_dir: str | None = None
    repository_fetch_timeout_seconds: float = Field(300.0, gt=0)
    repository_max_size_mb: int = Field(2048, gt=0)

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
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:4096 (got {value!r})")
        return value.rstrip("/")

    @field_validator("opencode_api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"must be an http(s) URL such as https://api.example.com/v1 (got {value!r})")
        return value

    @field_validator("default_model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if value.count("/") < 1 or value.startswith("/") or value.endswith("/"):
            raise ValueError(f"must be provider/model, such as anthropic/claude-sonnet-4 (got {value!r})")
        return value

    @field_validator("repository_allowlist")
    @classmethod
    def _allowlist(cls, value: str) -> str:
        for prefix in (p.strip() for p in value.split(",") if p.strip()):
            parts = urlsplit(prefix)
            if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
                raise ValueError(
                    f"each entry must be an http(s) URL prefix without credentials, such as "
                    f"https://git.example.com/team/ (got {parts._replace(netloc=parts.hostname or '').geturl()!r})"
                )
        return value

    @field_validator("git_commit_author")
    @classmethod
    def _author(cls, value: str) -> str:
        if not re.fullmatch(r"[^<>\n]+ <[^<>\s]+>", value.strip()):
            raise ValueError(f"must be 'Name <email>', such as 'OpenCode Gateway <bot@example.com>' (got {value!r})")
        return value.strip()

    @model_validator(mode="after")
    def _spawn_needs_provider(self) -> Settings:
        if self.spawn_opencode:
            missing = [
                name.upper()
                for name in ("opencode_api_url", "opencode_api_key", "opencode_model_name")
                if not _given(getattr(self, name))
            ]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required with --spawn-opencode "
                    "(set them in the environment or a .env file: the OpenAI-compatible provider's base URL, "
                    "API key and model name)"
                )
            base = urlsplit(self.opencode_base_url)
            if base.scheme != "http" or not _is_loopback(base.hostname or ""):
                raise ValueError(
                    "OPENCODE_BASE_URL must be a loopback http URL such as http://127.0.0.1:4096 "
                    "with --spawn-opencode, since the gateway starts OpenCode there"
                )
        return self

    # Derived values -------------------------------------------------------------------
    @property
    def allowed_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]

    @property
    def binds_loopback(self) -> bool:
        return _is_loopback(self.host)

    @property
    def repository_allow_list(self) -> list[str]:
        return [p.strip() for p in self.repository_allowlist.split(",") if p.strip()]

    @property
    def git_author(self) -> tuple[str, str]:
        name, _, email = self.git_commit_author.partition(" <")
        return name, email.rstrip(">")

    @property
    def workspaces_path(self) -> str:
        """Where cached clones and task worktrees live: on the volume the OpenCode worker sees."""
        if self.workspaces_dir:
            return self.workspaces_dir
        base = self.workspace_root or self.workspace_dir
        if base:
            return os.path.join(base, ".opencode-workspaces")
        return os.path.join(os.path.expanduser("~"), ".local", "share", "opencode-mcp-gateway", "workspaces")

    @property
    def opencode_port(self) -> int:
        parts = urlsplit(self.opencode_base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)


def _given(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return isinstance(value, str) and bool(value.strip())


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; raises ConfigError with a one-line reason."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    reasons = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if loc:
            given = err.get("input")
            shown = (
                "" if "secret" in loc or "key" in loc or "token" in loc or "password" in loc else f" (got {given!r})"
            )
            if err["type"].startswith(("int_", "float_", "greater", "less", "literal", "bool_")):
                msg = f"{msg}{shown}"
            reasons.append(f"{loc.upper()}: {msg}")
        else:
            reasons.append(msg)
    return "invalid configuration: " + "; ".join(reasons)
