"""Who a tool call acts for: the HTTP guard's identity, turned into a task owner.

* An authenticated identity acts as itself (an admin sees every task).
* With no authentication configured the gateway has a single user: every caller, and a
  call made in-process without HTTP, acts as `default`, the owner of ownerless tasks.
* With authentication configured, unauthenticated callers (ALLOW_UNAUTHENTICATED) share
  the owner `anonymous`; an in-process call without an identity is refused, since
  nothing vouches for it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from ..auth import identity_of_request
from ..tasks.ownership import SHARED_OWNER, Caller, acting_as

P = ParamSpec("P")
R = TypeVar("R")
ANONYMOUS_OWNER = "anonymous"


def caller_of(ctx: Context, *, auth_configured: bool) -> Caller:
    try:
        request: Any = ctx.request_context.request
    except ValueError:
        request = None
    return caller_of_request(request, auth_configured=auth_configured)


def caller_of_request(request: Any, *, auth_configured: bool) -> Caller:
    """The caller of an HTTP request (None: a call made in-process)."""
    identity = identity_of_request(request)
    if identity is None:
        if auth_configured:
            raise ToolError("this call carries no identity: call the gateway over HTTP with a token")
        return Caller(SHARED_OWNER)
    if not identity.authenticated:
        return Caller(ANONYMOUS_OWNER if auth_configured else SHARED_OWNER)
    return Caller(identity.name, admin=identity.admin)


def is_admin(ctx: Context, *, auth_configured: bool) -> bool:
    """Whether the call comes from the admin scope (False when it carries no identity)."""
    try:
        return caller_of(ctx, auth_configured=auth_configured).admin
    except ToolError:
        return False


def for_caller(auth_configured: bool) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Runs a tool (which takes `ctx: Context`) on behalf of its caller: tasks it starts are
    theirs, tasks it reads must be."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            ctx = kwargs.get("ctx")
            if not isinstance(ctx, Context):
                raise TypeError(f"{fn.__name__} needs a ctx: Context parameter to know its caller")
            with acting_as(caller_of(ctx, auth_configured=auth_configured)):
                return await fn(*args, **kwargs)

        return wrapper

    return decorate
