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

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
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

    # Security: who may call (see security.py) and how many MCP sessions they may hold.
    allow_unauthenticated: bool = False
    allowed_origins: str = ""
    max_sessions: int = Field(1000, ge=1, le=100_000)
    max_sessions_per_client: int = Field(100, ge=1)
    session_idle_timeout_seconds: float = Field(1800.0, gt=0, le=86_400)
    # Authentication (issue 12): API keys and an OAuth 2.1 resource server (see auth/).
    public_url: str | None = None
    mcp_api_keys_file: str | None = None
    oauth_issuer: str | None = None
    oauth_jwks_url: str | None = None
    oauth_audience: str | None = None
    oauth_required_scopes: str = ""
    oauth_admin_scope: str | None = None

    @field_validator("public_url", "oauth_issuer", "oauth_jwks_url")
    @classmethod
    def _auth_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value in (None, ""):
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL such as https://sso.example.com (got {shown_url(value)!r})")
        # An issuer is compared with the token's `iss` character for character (some end in /).
        return value if info.field_name == "oauth_issuer" else value.rstrip("/")

    @model_validator(mode="after")
    def _oauth_needs_public_url(self) -> Settings:
        if self.oauth_issuer and not self.public_url:
            raise ValueError(
                "PUBLIC_URL is required with OAUTH_ISSUER: the URL clients reach the gateway at, such as "
                "https://ocgw.apps.example.com (tokens must be issued for PUBLIC_URL + MCP_PATH)"
            )
        if self.oauth_jwks_url and not self.oauth_issuer:
            raise ValueError("OAUTH_JWKS_URL needs OAUTH_ISSUER: the issuer every token's `iss` must name")
        return self

    # Observability and budgets (metrics need no setting: GET /metrics).
    log_format: Literal["text", "json"] = "text"
    otel_exporter_otlp_endpoint: str | None = None  # read by OpenTelemetry itself; here to validate and show
    task_max_tokens: int | None = Field(None, gt=0)
    task_max_cost_usd: float | None = Field(None, gt=0)
    task_max_tokens_ceiling: int | None = Field(None, gt=0)
    task_max_cost_usd_ceiling: float | None = Field(None, gt=0)
    model_cost_input_per_mtok: float | None = Field(None, ge=0)
    model_cost_output_per_mtok: float | None = Field(None, ge=0)

    # Scale-out: several gateway replicas behind one balancer (see docs/design.md).
    gateway_id: str = Field("g0", pattern=r"^[A-Za-z0-9_-]{1,63}$")
    gateway_peers: str = ""
    request_state_key: SecretStr | None = None

    # Repository workspaces: tasks on a repository (or isolated) get their own worktree and branch.
    repository_allowlist: str = ""
    git_credentials_file: str | None = None
    git_commit_author: str = "OpenCode Gateway <opencode-gateway@localhost>"
    workspace_ttl_hours: float = Field(72.0, gt=0)
    workspaces_dir: str | None = None
    repository_fetch_timeout_seconds: float = Field(300.0, gt=0)
    repository_max_size_mb: int = Field(2048, gt=0)

    # Worker pool: tasks spread over several `opencode serve` (see workers.py, tasks/placement.py).
    opencode_workers: str = ""
    opencode_worker_url_template: str | None = None
    opencode_worker_count: int | None = Field(None, ge=1, le=1000)
    worker_max_tasks: int | None = Field(None, ge=1, le=100_000)
    schedule_wait_seconds: float = Field(30.0, ge=0, le=3600)
    # Stopping (see drain.py): which replica hosts which worker, and how long a stopping one drains.
    worker_gateways: str = ""
    shutdown_drain_seconds: float = Field(0.0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _one_worker_pool(self) -> Settings:
        template, count = self.opencode_worker_url_template, self.opencode_worker_count
        if self.opencode_workers.strip() and (template or count):
            raise ValueError("set OPENCODE_WORKERS or OPENCODE_WORKER_URL_TEMPLATE/_COUNT, not both")
        if bool(template) != bool(count):
            raise ValueError("OPENCODE_WORKER_URL_TEMPLATE and OPENCODE_WORKER_COUNT go together: set both or neither")
        from .workers import expand_template, parse_workers

        try:
            pool = expand_template(template, count) if template and count else parse_workers(self.opencode_workers)
        except ValueError as exc:
            name = "OPENCODE_WORKER_URL_TEMPLATE" if template else "OPENCODE_WORKERS"
            raise ValueError(f"{name}: {exc}") from None
        if pool and self.spawn_opencode and _is_loopback(self.opencode_listen_host):
            # The chart's StatefulSet: each pod spawns one worker of the pool, which the other
            # replicas must reach, so it listens on the pod's address (under OPENCODE_PASSWORD).
            raise ValueError(
                "with --spawn-opencode and a pool, this pod's OpenCode is one of the workers: set "
                "OPENCODE_LISTEN_HOST (e.g. 0.0.0.0) so the other gateways reach it"
            )
        return self

    @model_validator(mode="after")
    def _hosts_are_known(self) -> Settings:
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

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",")):
            if origin and not re.fullmatch(r"https?://[^/@?#\\\s]+", origin, flags=re.IGNORECASE):
                raise ValueError(f"each entry must be an origin such as https://app.example.com (got {origin!r})")
        return value

    @field_validator("default_model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if value.count("/") < 1 or value.startswith("/") or value.endswith("/"):
            raise ValueError(f"must be provider/model, such as anthropic/claude-sonnet-4 (got {value!r})")
        return value

    @field_validator("gateway_peers")
    @classmethod
    def _peers(cls, value: str) -> str:
        from .peers import parse_peers

        parse_peers(value)
        return value

    @model_validator(mode="after")
    def _replicas_share_state(self) -> Settings:
        peers = self.peer_map
        if peers and self.gateway_id not in peers:
            raise ValueError(f"GATEWAY_ID {self.gateway_id!r} must be one of the names in GATEWAY_PEERS")
        if len(peers) > 1 and not _given(self.request_state_key):
            raise ValueError(
                "REQUEST_STATE_KEY is required with several GATEWAY_PEERS: every replica must unseal the "
                "input-required state another replica sealed (any shared random secret, e.g. openssl rand -hex 32)"
            )
        return self

    @model_validator(mode="after")
    def _defaults_within_ceilings(self) -> Settings:
        for default, ceiling in (
            ("task_max_tokens", "task_max_tokens_ceiling"),
            ("task_max_cost_usd", "task_max_cost_usd_ceiling"),
        ):
            low, high = getattr(self, default), getattr(self, ceiling)
            if low is not None and high is not None and low > high:
                raise ValueError(f"{default.upper()} ({low:g}) must not exceed {ceiling.upper()} ({high:g})")
        return self

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
            if not _is_loopback(self.opencode_listen_host) and not _given(self.opencode_password):
                raise ValueError(
                    f"OPENCODE_PASSWORD is required with OPENCODE_LISTEN_HOST={self.opencode_listen_host}: "
                    "OpenCode is then reachable from the network, and every gateway needs the same password"
                )
        return self

    @model_validator(mode="after")
    def _split_pod(self) -> Settings:
        from .split_pod import split_pod_problem

        problem = split_pod_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _client_share_below_the_cap(self) -> Settings:
        if self.max_sessions_per_client >= self.max_sessions and self.max_sessions > 1:
            raise ValueError(
                f"MAX_SESSIONS_PER_CLIENT ({self.max_sessions_per_client}) must be below MAX_SESSIONS "
                f"({self.max_sessions}), so that one client cannot take every session"
            )
        return self

    # Derived values -------------------------------------------------------------------
    @property
    def allowed_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]

    @property
    def allowed_origin_list(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]

    @property
    def peer_map(self) -> dict[str, str]:
        from .peers import parse_peers

        return parse_peers(self.gateway_peers)

    @property
    def worker_urls(self) -> dict[str, str]:
        """The OpenCode workers by name, in order (one, `w0`, unless a pool is configured)."""
        from .workers import expand_template, parse_workers

        template, count = self.opencode_worker_url_template, self.opencode_worker_count
        if template and count:
            return expand_template(template, count)
        return parse_workers(self.opencode_workers) or {"w0": self.opencode_base_url}

    @property
    def worker_hosts(self) -> dict[str, str]:
        """Worker name → the GATEWAY_PEERS name of the replica that hosts it (its pod's gateway)."""
        from .workers import hosts_by_ordinal, parse_worker_gateways

        if self.worker_gateways.strip():
            return parse_worker_gateways(self.worker_gateways)
        if self.opencode_worker_url_template and self.peer_map:
            return hosts_by_ordinal(self.worker_urls, self.peer_map)
        return {}

    @property
    def worker_task_limit(self) -> int | None:
        """Running tasks per worker: WORKER_MAX_TASKS; unset, sized to the CPU for a configured
        pool and no limit for the single OPENCODE_BASE_URL (as before the pool existed)."""
        from .workers import default_max_tasks

        if self.worker_max_tasks is not None:
            return self.worker_max_tasks
        pooled = self.opencode_workers.strip() or self.opencode_worker_url_template
        return default_max_tasks() if pooled else None

    @property
    def binds_loopback(self) -> bool:
        return _is_loopback(self.host)

    @property
    def resource_url(self) -> str | None:
        """The protected resource (RFC 9728): what OAuth tokens are issued for."""
        return self.public_url + self.mcp_path if self.public_url else None

    @property
    def required_scope_list(self) -> list[str]:
        return [s for s in self.oauth_required_scopes.replace(",", " ").split() if s]

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


# Every setting that, when given, makes callers authenticate (static token, API keys, OAuth).
AUTH_SETTINGS = ("mcp_bearer_token", "mcp_api_keys_file", "oauth_issuer")


def auth_methods(settings: Settings) -> list[str]:
    """The authentication methods configured, by variable name (empty: nobody is asked who they are)."""
    return [name.upper() for name in AUTH_SETTINGS if _given(getattr(settings, name))]


def _given(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return isinstance(value, str) and bool(value.strip())


def shown_url(value: str) -> str:
    """`value` fit for an error message: everything up to the last `@` (user:password, which
    may itself hold `/`, `#` or `@`) is masked, however malformed the URL."""
    return re.sub(r"^([A-Za-z][\w+.-]*://)?.*@", r"\1***@", value, flags=re.DOTALL)


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
