"""Who may call, and how many MCP sessions they may hold: Origins, authentication (a bearer
token, API keys, OAuth 2.1 as a resource server) and the session caps (see security.py, auth/)."""

from __future__ import annotations

import re
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator, model_validator

from ._values import given, shown_url

# Every setting that, when given, makes callers authenticate (static token, API keys, OAuth).
AUTH_SETTINGS = ("mcp_bearer_token", "mcp_api_keys_file", "oauth_issuer")


class AccessSettings(BaseModel):
    # Security: who may call (see security.py) and how many MCP sessions they may hold.
    allow_unauthenticated: bool = False
    mcp_bearer_token: SecretStr | None = None
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
    def _oauth_needs_public_url(self) -> Self:
        if self.oauth_issuer and not self.public_url:
            raise ValueError(
                "PUBLIC_URL is required with OAUTH_ISSUER: the URL clients reach the gateway at, such as "
                "https://ocgw.apps.example.com (tokens must be issued for PUBLIC_URL + MCP_PATH)"
            )
        if self.oauth_jwks_url and not self.oauth_issuer:
            raise ValueError("OAUTH_JWKS_URL needs OAUTH_ISSUER: the issuer every token's `iss` must name")
        return self

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",")):
            if origin and not re.fullmatch(r"https?://[^/@?#\\\s]+", origin, flags=re.IGNORECASE):
                raise ValueError(f"each entry must be an origin such as https://app.example.com (got {origin!r})")
        return value

    @model_validator(mode="after")
    def _client_share_below_the_cap(self) -> Self:
        if self.max_sessions_per_client >= self.max_sessions and self.max_sessions > 1:
            raise ValueError(
                f"MAX_SESSIONS_PER_CLIENT ({self.max_sessions_per_client}) must be below MAX_SESSIONS "
                f"({self.max_sessions}), so that one client cannot take every session"
            )
        return self

    @property
    def allowed_origin_list(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]

    @property
    def required_scope_list(self) -> list[str]:
        return [s for s in self.oauth_required_scopes.replace(",", " ").split() if s]


def auth_methods(settings: AccessSettings) -> list[str]:
    """The authentication methods configured, by variable name (empty: nobody is asked who they are)."""
    return [name.upper() for name in AUTH_SETTINGS if given(getattr(settings, name))]
