"""OpenCode's payloads, typed: the fields the gateway reads (opencode 1.18.33).

Every model allows extra fields, so what a newer OpenCode adds passes through (and is
written back unchanged where the gateway writes a record back, such as a session's
metadata). A field OpenCode leaves out or sends as null reads as its default.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Payload(BaseModel):
    model_config = ConfigDict(extra="allow")


class SessionTime(Payload):
    created: int = 0  # epoch milliseconds
    updated: int = 0


class Session(Payload):
    id: str
    directory: str | None = None
    title: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)  # what the gateway records on it
    time: SessionTime = Field(default_factory=SessionTime)

    @field_validator("metadata", "time", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class Health(Payload):
    healthy: bool = False
    version: str | None = None


class Agent(Payload):
    name: str
    description: str | None = None
    mode: str | None = None  # primary, subagent or all

    @property
    def usable(self) -> bool:
        return self.mode in ("primary", "all", "subagent")
