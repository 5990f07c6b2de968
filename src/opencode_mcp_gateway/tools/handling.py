"""What every tool call shares: expected failures as tool errors, and the sealed request state."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.request_state import RequestStateSecurity

from ..auth import identity_of_request
from ..opencode import OpenCodeError, OpenCodeUnavailable
from ..tasks import TaskError
from ..workspaces import WorkspaceError

P = ParamSpec("P")
R = TypeVar("R")


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Expected failures become tool errors (isError) with a message that says what to fix."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (TaskError, WorkspaceError) as exc:
            raise ToolError(str(exc)) from None
        except OpenCodeUnavailable as exc:
            raise ToolError(f"{exc}. Is `opencode serve` running? GET /readyz on the gateway tells.") from None
        except OpenCodeError as exc:
            raise ToolError(f"OpenCode error: {exc}") from None

    # The docstring is the tool's description, shown to models verbatim: no code indentation.
    wrapper.__doc__ = inspect.cleandoc(fn.__doc__ or "")
    return wrapper


def request_state_security(key: str | None) -> RequestStateSecurity | None:
    """With a key shared by every replica, an input-required result sealed by one replica
    (protocol 2026-07-28) is unsealed by whichever replica the client's retry reaches.
    The state is bound to the caller's identity, so another caller cannot replay it."""
    if not key:
        return None  # the SDK's per-process key: right for a single gateway

    def principal(ctx: ServerRequestContext[Any, Any]) -> str | None:
        who = identity_of_request(ctx.request)
        return who.name if who is not None and who.authenticated else None

    return RequestStateSecurity(keys=[key], bind_principal=principal)
