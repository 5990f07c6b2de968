"""Settings of completion webhooks (docs/design.md, "Completion webhooks"): where callers may
point `notify_url`, the deployment-wide endpoint, the Standard Webhooks secret, and how long
and how patiently a failing delivery is retried."""

from __future__ import annotations

import base64
import binascii
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from ._values import given, shown_url

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
# Standard Webhooks: the key is 24 to 64 random bytes, base64-encoded after `whsec_`.
SECRET_BYTES = (24, 64)


def _http_url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook address or allow-list prefix (None: it can)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http(s) URL such as https://hooks.example.com/ (got {shown_url(url)!r})"
    if "@" in parts.netloc:
        return f"must not carry credentials (user:password@); the signature authenticates (got {shown_url(url)!r})"
    return None


class WebhookSettings(BaseModel):
    webhook_url_allowlist: str = ""
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_retry_seconds: float = Field(3600.0, gt=0, le=7 * 86_400)
    webhook_attempt_timeout_seconds: float = Field(10.0, gt=0, le=300)
    webhook_backoff_seconds: float = Field(5.0, gt=0, le=3600)

    @field_validator("webhook_url_allowlist")
    @classmethod
    def _allowlist(cls, value: str) -> str:
        for prefix in (p.strip() for p in value.split(",") if p.strip()):
            problem = _http_url_problem(prefix)
            if problem:
                raise ValueError(f"each entry {problem}")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        problem = _http_url_problem(value.strip())
        if problem:
            raise ValueError(problem)
        return value.strip()

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        raw = value.get_secret_value().strip()
        low, high = SECRET_BYTES
        wrong = (
            f"must be {SECRET_PREFIX} followed by the base64 of {low} to {high} random bytes, e.g. "
            f"{SECRET_PREFIX}$(openssl rand -base64 32)"
        )
        if not raw.startswith(SECRET_PREFIX):
            raise ValueError(wrong)
        try:
            key = base64.b64decode(raw.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(wrong) from None
        if not low <= len(key) <= high:
            raise ValueError(wrong)
        return SecretStr(raw)

    @model_validator(mode="after")
    def _secret_when_used(self) -> Self:
        if (self.webhook_allow_list or self.webhook_url) and not given(self.webhook_secret):
            raise ValueError(
                "WEBHOOK_SECRET is required with WEBHOOK_URL_ALLOWLIST or WEBHOOK_URL: every webhook is signed "
                f"(generate one: echo {SECRET_PREFIX}$(openssl rand -base64 32))"
            )
        return self

    @property
    def webhook_allow_list(self) -> list[str]:
        return [p.strip() for p in self.webhook_url_allowlist.split(",") if p.strip()]

    @property
    def webhooks_enabled(self) -> bool:
        return bool(self.webhook_allow_list or self.webhook_url)
