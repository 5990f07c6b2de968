"""OpenCode's payloads, typed: the fields the gateway reads (opencode 1.18.33).

Every model allows extra fields, so what a newer OpenCode adds passes through (and is
written back unchanged where the gateway writes a record back, such as a session's
metadata). A field OpenCode leaves out or sends as null reads as its default.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator


class Payload(BaseModel):
    model_config = ConfigDict(extra="allow")


def _empty_if_null(value: Any) -> Any:
    return {} if value is None else value


# A record OpenCode may send as null: read as an empty one (its fields at their defaults).
OrEmpty = BeforeValidator(_empty_if_null)


class SessionTime(Payload):
    created: int = 0  # epoch milliseconds
    updated: int = 0


class Session(Payload):
    id: str
    directory: str | None = None
    title: str | None = None
    metadata: Annotated[dict[str, Any], OrEmpty] = Field(default_factory=dict)  # what the gateway records on it
    time: Annotated[SessionTime, OrEmpty] = Field(default_factory=SessionTime)


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


# -- messages: GET /session/{id}/message answers [{info, parts}] ---------------------------
class MessageTime(Payload):
    created: int = 0
    completed: int | None = None  # set once the message is finished


class ModelRef(Payload):
    providerID: str | None = None  # OpenCode's names
    modelID: str | None = None


class TokenCache(Payload):
    read: int = 0
    write: int = 0


class TokenCounts(Payload):
    input: int = 0
    output: int = 0
    reasoning: int = 0
    cache: TokenCache = Field(default_factory=TokenCache)


class MessageInfo(Payload):
    id: str
    role: str  # user or assistant
    parentID: str | None = None  # an assistant message's user message
    time: Annotated[MessageTime, OrEmpty] = Field(default_factory=MessageTime)
    agent: str | None = None
    model: ModelRef | None = None  # a user message's model choice
    providerID: str | None = None  # an assistant message's model
    modelID: str | None = None
    tokens: Annotated[TokenCounts, OrEmpty] = Field(default_factory=TokenCounts)
    cost: float = 0.0
    finish: str | None = None  # stop, tool-calls, length, …
    error: dict[str, Any] | None = None  # {name, data: {message, statusCode, …}}
    structured: Any = None  # an assistant message's answer to an output format (json_schema)
    tools: dict[str, bool] | None = None  # a user message's per-turn tool switches
    unreadable: bool = False  # the client's stand-in for a message OpenCode cannot return

    @property
    def ended(self) -> bool:
        """Finished: completed, or stopped by an error."""
        return bool(self.error or self.time.completed)


class ToolState(Payload):
    status: str | None = None  # pending, running, completed, error
    input: Any = None
    output: str | None = None
    title: str | None = None
    error: str | None = None

    @field_validator("output", "title", "error", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, str) else str(value)


class Part(Payload):
    type: str
    text: str | None = None
    synthetic: bool = False
    tool: str | None = None
    state: ToolState | None = None
    mime: str | None = None  # a file part's
    filename: str | None = None
    url: str | None = None  # a file part's content, as a data: URL
    metadata: Annotated[dict[str, Any], OrEmpty] = Field(default_factory=dict)


class Message(Payload):
    info: MessageInfo
    parts: list[Part] = Field(default_factory=list)
