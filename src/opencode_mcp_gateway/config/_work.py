"""Settings of the work itself: observability and budgets, and repository workspaces."""

from __future__ import annotations

import re
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator


class WorkSettings(BaseModel):
    # Observability and budgets (metrics need no setting: GET /metrics).
    log_format: Literal["text", "json"] = "text"
    otel_exporter_otlp_endpoint: str | None = None  # read by OpenTelemetry itself; here to validate and show
    task_max_tokens: int | None = Field(None, gt=0)
    task_max_cost_usd: float | None = Field(None, gt=0)
    task_max_tokens_ceiling: int | None = Field(None, gt=0)
    task_max_cost_usd_ceiling: float | None = Field(None, gt=0)
    model_cost_input_per_mtok: float | None = Field(None, ge=0)
    model_cost_output_per_mtok: float | None = Field(None, ge=0)

    # Repository workspaces: tasks on a repository (or isolated) get their own worktree and branch.
    repository_allowlist: str = ""
    git_credentials_file: str | None = None
    git_commit_author: str = "OpenCode Gateway <opencode-gateway@localhost>"
    workspace_ttl_hours: float = Field(72.0, gt=0)
    workspaces_dir: str | None = None
    repository_fetch_timeout_seconds: float = Field(300.0, gt=0)
    repository_max_size_mb: int = Field(2048, gt=0)

    @model_validator(mode="after")
    def _defaults_within_ceilings(self) -> Self:
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

    @property
    def repository_allow_list(self) -> list[str]:
        return [p.strip() for p in self.repository_allowlist.split(",") if p.strip()]

    @property
    def git_author(self) -> tuple[str, str]:
        name, _, email = self.git_commit_author.partition(" <")
        return name, email.rstrip(">")
