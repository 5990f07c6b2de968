"""What one turn of the fake OpenCode does, step by step (the script a test queues).

Each step is what one model response would make OpenCode do in 1.18.33: a tool call is an
assistant message that ends with `finish: "tool-calls"`, the answer one that ends with
`finish: "stop"`. Steps that need someone (a permission, a question, `Hold`) pause the turn
until the reply (or `FakeOpenCode.resume`) arrives; everything else plays at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    """The final answer: the turn ends completed."""

    text: str
    tokens: tuple[int, int] = (100, 20)  # input, output
    cost: float = 0.001


@dataclass(frozen=True)
class Tool:
    """One tool call. `files` maps a changed path to its patch text (a diff for the turn)."""

    tool: str
    input: dict[str, Any] = field(default_factory=dict)
    output: str = "ok"
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Structured:
    """The answer to an output format: a StructuredOutput call whose object OpenCode keeps
    (unchecked) as the message's `structured`; the turn ends with finish "tool-calls"."""

    value: Any


@dataclass(frozen=True)
class Ask:
    """The tool call needs a permission: the turn waits for `/permission/{id}/reply`."""

    permission: str = "external_directory"
    patterns: tuple[str, ...] = ("/outside/*",)
    metadata: dict[str, Any] = field(default_factory=dict)
    tool: str = "write"


@dataclass(frozen=True)
class Question:
    """The `question` tool: the turn waits for `/question/{id}/reply` (or reject).
    Each question is (text, option labels, multiple)."""

    questions: tuple[tuple[str, tuple[str, ...], bool], ...] = (("Which file?", ("a.py", "b.py"), False),)


@dataclass(frozen=True)
class Fail:
    """The model provider failed: the assistant message carries the error, the turn ends."""

    message: str = "bad api key"
    name: str = "APIError"
    status_code: int | None = 401


@dataclass(frozen=True)
class SessionError:
    """A `session.error` with no assistant message (e.g. the model failed to load)."""

    message: str = "Model not found: fake/none"
    name: str = "UnknownError"


@dataclass(frozen=True)
class Retry:
    """The provider answered with a transient error: the session shows `retry`."""

    attempt: int = 1
    message: str = "overloaded"


@dataclass(frozen=True)
class Hold:
    """The model is still thinking: the turn waits until `FakeOpenCode.resume(session)`."""


@dataclass(frozen=True)
class Crash:
    """OpenCode died mid-turn: the assistant message is never completed, the session idle."""


Step = Reply | Tool | Structured | Ask | Question | Fail | SessionError | Retry | Hold | Crash
