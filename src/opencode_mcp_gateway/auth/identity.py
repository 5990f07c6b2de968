"""Who is calling: the identity the HTTP guard established for a request.

The guard (ASGI middleware) authenticates a request and stores an `Identity` in the
ASGI scope's state (`request.state.identity`). The MCP SDK hands each tool call the
Starlette request it came in on, so tools read the caller from there rather than from
a context variable: on 2025-era sessions a tool runs in the session's task, whose
context was copied from whichever request opened the session.

Everything that is per caller (session quotas, task ownership, audit and log lines,
metrics) takes its identity from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.types import Scope

STATE_KEY = "identity"


@dataclass(frozen=True)
class Identity:
    """`name` is stable and safe to log: "default" (MCP_BEARER_TOKEN), an API key's name,
    an OAuth token's `iss`+`sub`, or "anonymous@<address>" when unauthenticated."""

    name: str
    admin: bool = False
    scopes: frozenset[str] = field(default_factory=frozenset)
    authenticated: bool = True


def anonymous(address: str | None) -> Identity:
    return Identity(name=f"anonymous@{address or 'unknown'}", authenticated=False)


def set_identity(scope: Scope, identity: Identity) -> None:
    scope.setdefault("state", {})[STATE_KEY] = identity


def identity_of_scope(scope: Scope) -> Identity | None:
    value = scope.get("state", {}).get(STATE_KEY)
    return value if isinstance(value, Identity) else None


def identity_of_request(request: Any) -> Identity | None:
    """The identity of a Starlette request (or None outside HTTP, e.g. in-memory tests)."""
    scope = getattr(request, "scope", None)
    return identity_of_scope(scope) if isinstance(scope, dict) else None
