"""Logging: plain text or one JSON object per line (LOG_FORMAT), with request and task ids.

Ids travel in context variables, so every record made while handling a request carries
them without being passed around: `request_id` and `mcp_session_id` are set per HTTP
request by `RequestIds` (uvicorn's access line is written inside the request, so it
carries them too); `tool`, `task_id` and `identity` are set per tool call.

A record never carries a secret: the gateway logs no tokens, passwords, API keys or
prompt text, and the JSON form has no field that would take them.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.types import ASGIApp, Receive, Scope, Send

LogFormat = Literal["text", "json"]

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
mcp_session_id: ContextVar[str | None] = ContextVar("mcp_session_id", default=None)
task_id: ContextVar[str | None] = ContextVar("task_id", default=None)
identity: ContextVar[str | None] = ContextVar("identity", default=None)
tool: ContextVar[str | None] = ContextVar("tool", default=None)

_CONTEXT = (request_id, mcp_session_id, task_id, identity, tool)
# Fields a record may add with `extra=` (the per-call line); nothing else leaves the process.
_EXTRA_FIELDS = ("outcome", "duration_ms", "status", "worker", "error")
REQUEST_ID_KEY = "request_id"
SESSION_ID_KEY = "mcp_session_id"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for var in _CONTEXT:
            value = getattr(record, var.name, None) or var.get()
            if value is not None:
                entry[var.name] = value
        for name in _EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _, status = record.args
            entry.update({"client": client, "method": method, "path": str(path).split("?", 1)[0], "status": status})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# Libraries that log message bodies at DEBUG: kept at INFO whatever LOG_LEVEL says.
QUIET_LOGGERS = ("sse_starlette", "sse_starlette.sse", "httpcore", "mcp.server.streamable_http", "mcp.shared")


def configure(level: str, fmt: LogFormat) -> None:
    """Root logging for the whole process; uvicorn's loggers hand their records to it."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per OpenCode call is noise
    for name in QUIET_LOGGERS:  # they log whole request/response bodies (tokens, task output) at DEBUG
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger(name).getEffectiveLevel()))
    logging.captureWarnings(True)  # Python warnings become records too: every line has one format


@contextmanager
def bound(**values: str | None) -> Iterator[None]:
    """Set context ids (by name) for the duration of a block."""
    tokens = [(var, var.set(values[var.name])) for var in _CONTEXT if var.name in values]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class RequestIds:
    """ASGI middleware: a request id (the caller's X-Request-Id if it sent a sane one) and
    the MCP session id, for every record made while the request is handled."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        rid = given if 0 < len(given) <= 64 and given.replace("-", "").isalnum() else uuid.uuid4().hex[:16]
        session = headers.get("mcp-session-id")
        session = session if session and len(session) <= 128 and session.isprintable() else None

        state = scope.setdefault("state", {})  # a tool call may run in another task: see ids_of
        state[REQUEST_ID_KEY], state[SESSION_ID_KEY] = rid, session

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-request-id", rid.encode())]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
                if session is None:  # the response to `initialize` names the new session
                    given = dict(message["headers"]).get(b"mcp-session-id")
                    if given:
                        mcp_session_id.set(given.decode("latin-1"))
            await send(message)

        with bound(request_id=rid, mcp_session_id=session):
            await self.app(scope, receive, send_with_id)


def ids_of(request: Any) -> dict[str, str | None]:
    """The request and MCP session ids of a Starlette request. A tool call of a 2025-era
    session runs in the session's task, whose context is that of the opening request."""
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return {}
    state = scope.get("state", {})  # RequestIds read the headers once, for the whole request
    return {"request_id": state.get(REQUEST_ID_KEY), "mcp_session_id": state.get(SESSION_ID_KEY)}


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
