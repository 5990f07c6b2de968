"""Spawn mode: the model provider's API key stays in the gateway.

OpenCode's agent runs shell commands, so whatever OpenCode can read, the agent can read
(`env`, /proc/<pid>/environ, its config). The gateway therefore serves OpenCode an
OpenAI-compatible endpoint on loopback that forwards each request to OPENCODE_API_URL with
the real key added. OpenCode authenticates to it with a per-start token that is worth
nothing anywhere else. Responses (SSE streams included) pass through chunk by chunk.

In the chart's pod OpenCode runs in a container of its own (split_pod.py): the proxy then
listens on the fixed LLM_PROXY_PORT of the pod's loopback, under the LLM_PROXY_TOKEN both
containers are given.

With sandboxes (fleet/sandboxes/) each sandbox's OpenCode holds a token of its own, which
`accepts` checks (by computing it again: no list of tokens is kept), and a local sandbox,
which has no network, reaches the proxy through a Unix socket (`unix_path`).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
import uvicorn
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

PREFIX = "/v1"
# Never forwarded upstream: the caller's credential, and what the proxy sets itself.
_DROP_REQUEST = {b"host", b"authorization", b"content-length", b"connection", b"accept-encoding", b"api-key"}
_DROP_RESPONSE = {"content-length", "transfer-encoding", "connection", "keep-alive"}


def proxy_url(port: int) -> str:
    return f"http://127.0.0.1:{port}{PREFIX}"


class LLMProxy:
    def __init__(
        self,
        upstream: str,
        api_key: str,
        *,
        port: int = 0,
        token: str | None = None,
        accepts: Callable[[bytes], bool] | None = None,
        unix_path: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self._api_key = api_key
        self.token = token or secrets.token_urlsafe(32)
        self._accepts = accepts
        self._sockets = [self._unix_socket(unix_path)] if unix_path is not None else []
        # Bound now: OpenCode starts (and learns the URL) before the event loop runs.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restarted gateway gets its port
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            raise OSError(f"LLM_PROXY_PORT: cannot listen on {host}:{port} ({exc.strerror})") from None
        self.port: int = self._socket.getsockname()[1]
        self._sockets.append(self._socket)
        self._server: uvicorn.Server | None = None
        self._http: httpx2.AsyncClient | None = None

    @staticmethod
    def _unix_socket(path: Path) -> socket.socket:
        path.unlink(missing_ok=True)  # left by an earlier gateway on this state directory
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        return listener

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMProxy:
        """The proxy to OPENCODE_API_URL: on LLM_PROXY_PORT under LLM_PROXY_TOKEN when they are
        set (the split pod), else on a free port under a per-start token (spawn mode)."""
        key = settings.opencode_api_key.get_secret_value() if settings.opencode_api_key else ""
        token = settings.llm_proxy_token.get_secret_value() if settings.llm_proxy_token else None
        return cls(settings.opencode_api_url or "", key, port=settings.llm_proxy_port or 0, token=token)

    @property
    def base_url(self) -> str:
        return proxy_url(self.port)

    async def serve(self) -> None:
        config = uvicorn.Config(self, log_level="warning", lifespan="off", access_log=False)
        self._server = _QuietServer(config)
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=600.0)) as http:
            self._http = http
            try:
                await self._server.serve(sockets=self._sockets)
            finally:
                self._server.should_exit = True
                self.close()

    def close(self) -> None:
        """Release the port (also when the proxy never served: a supervisor that never ran)."""
        for listener in self._sockets or [self._socket]:
            listener.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._http is None:
            return
        headers = dict(scope["headers"])
        given = headers.get(b"authorization", b"").partition(b" ")[2].strip()
        sandbox = self._accepts is not None and self._accepts(given)  # a sandbox's own token
        if not (hmac.compare_digest(given, self.token.encode()) or sandbox):
            await _error(send, 401, "the gateway's LLM proxy needs its per-start token")
            return
        path = scope["path"]
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            await _error(send, 404, f"unknown path: the proxy serves {PREFIX}/...")
            return
        url = self.upstream + path[len(PREFIX) :]
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        body = await _read_body(receive)
        forward = [(k, v) for k, v in scope["headers"] if k not in _DROP_REQUEST]
        forward.append((b"authorization", f"Bearer {self._api_key}".encode()))
        request = self._http.build_request(scope["method"], url, headers=forward, content=body)
        try:
            response = await self._http.send(request, stream=True)
        except httpx2.HTTPError as exc:
            log.warning("LLM provider unreachable: %s", type(exc).__name__)
            await _error(send, 502, f"the model provider is unreachable ({type(exc).__name__})")
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": list(_response_headers(response)),
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except httpx2.HTTPError as exc:
            log.warning("LLM provider stream broke off: %s", type(exc).__name__)
        finally:
            await response.aclose()


class _QuietServer(uvicorn.Server):
    """A second server in the gateway's loop: the signals stay with the main one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _response_headers(response: httpx2.Response) -> Iterator[tuple[bytes, bytes]]:
    for key, value in response.headers.raw:
        if key.decode("latin-1").lower() not in _DROP_RESPONSE:
            yield key, value


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "gateway_proxy_error"}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
