"""Typed async calls to OpenCode's v1 HTTP API over one pooled httpx2 client.

Shapes follow opencode 1.18.33 (see docs/design.md). Sessions, health and agents come
back as the typed models of `_models` (extra fields from newer OpenCode versions pass
through); messages, statuses, diffs and requests are still plain dicts, read by the task
layer's pure rules.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx2

from ..observability import metrics, tracing
from ..primitives import SingleFlight
from ._errors import OpenCodeRequestError, OpenCodeUnavailable, decode
from ._models import Agent, Health, Message, Session
from ._unreadable import MessageWalk, cannot_list
from .versions import VersionGate, detect

JSON = dict[str, Any]
MAX_CONNECTIONS = 16  # to one OpenCode, kept alive between calls


class OpenCodeClient:
    def __init__(
        self,
        base_url: str,
        *,
        username: str = "opencode",
        password: str | None = None,
        timeout: float = 30.0,
        transport: httpx2.AsyncBaseTransport | None = None,
        is_ready: Callable[[], bool] | None = None,
        worker: str = "w0",
        uds: str | None = None,  # a Unix socket to reach OpenCode through (a local sandbox's)
    ) -> None:
        self.worker = worker  # the name metrics and traces give this OpenCode
        self.base_url = base_url.rstrip("/")
        self.display_url = redact_url(self.base_url)  # never show credentials in a message
        # A spawned OpenCode accepts connections ~0.2 s before it can answer them, and a
        # request sent then hangs forever: until the supervisor has seen it ready, fail fast.
        self._is_ready = is_ready
        auth = httpx2.BasicAuth(username, password) if password else None
        # Bounded: the pool checks each open connection (a socket probe for an idle one) every
        # time a request starts or ends, so 50 idle connections cost ~0.5 ms a call. OpenCode
        # answers one request at a time anyway; the rest wait here for a connection instead.
        limits = httpx2.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        common: dict[str, Any] = {"base_url": self.base_url, "auth": auth}

        def over(limits: httpx2.Limits) -> httpx2.AsyncBaseTransport | None:
            return httpx2.AsyncHTTPTransport(uds=uds, limits=limits) if uds and transport is None else transport

        self._http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout, connect=5.0), limits=limits, transport=over(limits), **common
        )
        # The event stream gets a connection pool of its own: sharing one with a long-lived
        # stream made every other call ~40% slower.
        # OpenCode sends a heartbeat every 10 s: 15 s of silence means a dead (or never
        # answering, mid-restart) stream.
        stream_limits = httpx2.Limits(max_connections=100, max_keepalive_connections=20)  # httpx2's default
        self._stream_http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(5.0, read=15.0), transport=over(stream_limits), **common
        )
        self._walk = MessageWalk()
        # Many agents poll health at once: those asking while a health read is on its way share
        # it (one GET instead of one each; OpenCode spends 1-3 ms of CPU on every GET).
        self._health_read: SingleFlight[Health] = SingleFlight()
        self.versions = VersionGate(self.health)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._stream_http.aclose()

    def _check_ready(self) -> None:
        if self._is_ready is not None and not self._is_ready():
            raise OpenCodeUnavailable("OpenCode is starting (or restarting); try again in a few seconds")

    # -- plumbing ----------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        timeout: float | None = None,
        headers_out: dict[str, str] | None = None,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        kwargs: dict[str, Any] = {"params": query} if query else {}  # even an empty one rebuilds the URL
        if json is not None:
            kwargs["json"] = json
        if timeout is not None:
            kwargs["timeout"] = timeout
        self._check_ready()
        started = time.perf_counter()
        outcome = "unavailable"
        headers: dict[str, str] = {}
        with tracing.opencode_span(method, path, self.worker, headers) as span:
            try:
                response = await self._http.request(method, path, headers=headers, **kwargs)
                outcome = "error"
                if headers_out is not None:
                    headers_out.update(response.headers)
                decoded = decode(response, f"{method} {path}")
                outcome = "ok"
                return decoded
            except httpx2.TimeoutException as exc:
                raise OpenCodeUnavailable(
                    f"OpenCode at {self.display_url} did not answer {method} {path} in time"
                ) from exc
            except httpx2.TransportError as exc:
                raise OpenCodeUnavailable(
                    f"OpenCode at {self.display_url} is unreachable ({type(exc).__name__})"
                ) from exc
            finally:
                if outcome != "ok":
                    tracing.mark_error(span, outcome)
                metrics.OPENCODE_REQUEST_DURATION.labels(self.worker, outcome).observe(time.perf_counter() - started)

    @asynccontextmanager
    async def stream(self, path: str) -> AsyncIterator[httpx2.Response]:
        """An open streaming GET (the event stream); raises like any other call."""
        self._check_ready()
        try:
            async with self._stream_http.stream("GET", path) as response:
                if response.status_code >= 400:
                    await response.aread()
                    decode(response, f"GET {path}")
                yield response
        except httpx2.TransportError as exc:
            raise OpenCodeUnavailable(f"event stream from {self.display_url} failed ({type(exc).__name__})") from exc

    # -- server ------------------------------------------------------------------------
    async def health(self, timeout: float | None = None) -> Health:
        """OpenCode's health and version; OpenCodeUnsupported when it is not a version this
        gateway speaks (versions.py)."""

        async def get(path: str) -> Any:
            return await self._request("GET", path, timeout=timeout)

        return await self._health_read(lambda: detect(get, self.display_url))

    async def tool_ids(self) -> list[str]:
        """The tools OpenCode offers its agents (built-in and plugins')."""
        found = await self._request("GET", "/experimental/tool/ids")
        return [str(t) for t in found] if isinstance(found, list) else []

    async def agents(self, directory: str | None = None) -> list[Agent]:
        found = await self._request("GET", "/agent", params={"directory": directory} if directory else None)
        return [Agent.model_validate(a) for a in found]

    async def providers(self, directory: str | None = None) -> JSON:
        result: JSON = await self._request(
            "GET", "/config/providers", params={"directory": directory} if directory else None
        )
        return result

    # -- sessions ----------------------------------------------------------------------
    async def create_session(
        self,
        *,
        directory: str | None,
        title: str,
        permission: list[JSON] | None = None,
        metadata: JSON | None = None,
    ) -> Session:
        body: JSON = {"title": title}
        if permission:
            body["permission"] = permission
        if metadata:
            body["metadata"] = metadata
        created = await self._request(
            "POST", "/session", params={"directory": directory} if directory else None, json=body
        )
        return Session.model_validate(created)

    async def delete_session(self, session_id: str) -> None:
        await self._request("DELETE", f"/session/{session_id}")

    async def all_sessions(self, page_size: int = 500) -> list[Session]:
        """Every (non-archived, top-level) session across directories, newest updated first.
        OpenCode's cursor is exclusive on `time.updated`; paging from one millisecond later and
        dropping repeats keeps sessions that share a millisecond."""
        found: dict[str, Session] = {}
        cursor: int | None = None
        while True:
            params: dict[str, str | int] = {"roots": "true", "limit": page_size}
            if cursor is not None:
                params["cursor"] = cursor
            page = [
                Session.model_validate(s) for s in await self._request("GET", "/experimental/session", params=params)
            ]
            fresh = [s for s in page if s.id not in found]
            found.update((s.id, s) for s in fresh)
            if len(page) < page_size or not fresh:
                return list(found.values())
            cursor = page[-1].time.updated + 1

    async def get_session(self, session_id: str) -> Session:
        return Session.model_validate(await self._request("GET", f"/session/{session_id}"))

    async def update_session_metadata(self, session_id: str, metadata: JSON) -> Session:
        """Replaces the session's metadata (OpenCode keeps no other keys): pass all of it."""
        return Session.model_validate(
            await self._request("PATCH", f"/session/{session_id}", json={"metadata": metadata})
        )

    async def prompt_async(
        self,
        session_id: str,
        *,
        message_id: str,
        text: str,
        agent: str | None,
        model: tuple[str, str] | None,
        parts: list[JSON] | None = None,
        output_format: JSON | None = None,
        tools: dict[str, bool] | None = None,
    ) -> None:
        """`parts` follow the text (attachments); `output_format` is OpenCode's `format`;
        `tools` switches tools off for this turn only (OpenCode stores it on the message)."""
        body: JSON = {"messageID": message_id, "parts": [{"type": "text", "text": text}, *(parts or [])]}
        if agent:
            body["agent"] = agent
        if model:
            body["model"] = {"providerID": model[0], "modelID": model[1]}
        if output_format:
            body["format"] = output_format
        if tools:
            body["tools"] = tools
        await self._request("POST", f"/session/{session_id}/prompt_async", json=body)

    async def messages(
        self,
        session_id: str,
        limit: int | None = None,
        *,
        sent_with_format: Collection[str] = (),
        until: str | None = None,
    ) -> list[Message]:
        """The session's messages (the newest `limit`), oldest first. A user message sent with
        an output format cannot always be listed by OpenCode 1.18.33: it comes back as a
        stand-in marked `unreadable` (`_unreadable.py`); `sent_with_format` names such
        messages, and the walk past them may stop once message `until` is read."""
        path = f"/session/{session_id}/message"
        try:
            found = await self._request("GET", path, params={"limit": limit} if limit else None)
        except OpenCodeRequestError as exc:
            if not cannot_list(exc):
                raise

            async def page(size: int, before: str | None) -> tuple[list[JSON], str | None]:
                headers: dict[str, str] = {}
                params: dict[str, str | int] = {"limit": size, **({"before": before} if before else {})}
                items = await self._request("GET", path, params=params, headers_out=headers)
                return items, headers.get("x-next-cursor")

            found = await self._walk.walk(session_id, page, limit, sent_with_format, until)
        return [Message.model_validate(m) for m in found]

    async def session_status(self, directory: str | None) -> dict[str, JSON]:
        result: dict[str, JSON] = await self._request(
            "GET", "/session/status", params={"directory": directory} if directory else None
        )
        return result

    async def diff(self, session_id: str, message_id: str) -> list[JSON]:
        result: list[JSON] = await self._request("GET", f"/session/{session_id}/diff", params={"messageID": message_id})
        return result

    async def abort(self, session_id: str) -> bool:
        return bool(await self._request("POST", f"/session/{session_id}/abort"))

    # -- permission and question requests ----------------------------------------------
    async def permissions(self, directory: str | None = None) -> list[JSON]:
        result: list[JSON] = await self._request(
            "GET", "/permission", params={"directory": directory} if directory else None
        )
        return result

    async def questions(self, directory: str | None = None) -> list[JSON]:
        result: list[JSON] = await self._request(
            "GET", "/question", params={"directory": directory} if directory else None
        )
        return result

    async def reply_permission(self, request_id: str, reply: str, message: str | None = None) -> None:
        body: JSON = {"reply": reply}
        if message:
            body["message"] = message
        await self._request("POST", f"/permission/{request_id}/reply", json=body)

    async def reply_question(self, request_id: str, answers: list[list[str]]) -> None:
        await self._request("POST", f"/question/{request_id}/reply", json={"answers": answers})

    async def reject_question(self, request_id: str) -> None:
        await self._request("POST", f"/question/{request_id}/reject")


def redact_url(url: str) -> str:
    """The URL without any user:password@ part, for logs and tool output."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
