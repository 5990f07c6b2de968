"""Who may talk to the gateway: Host and Origin checks, and the bearer token.

An ASGI middleware in front of everything but the probes (/healthz, /readyz), which
kubelets call by pod IP without credentials.

* Host: ALLOWED_HOSTS entries are host names with or without a port; without one, any
  port matches. Unset and bound to loopback: only localhost names (DNS-rebinding
  protection). Unset and bound to all interfaces: any Host.
* Origin (sent by browsers): must name an allowed host; with any Host allowed it must
  name the request's own host or localhost. Otherwise 403.
* Who calls, on the MCP path: the `auth` package's authenticator (static tokens, API
  keys, OAuth access tokens) stores the caller's `Identity` in the scope, or answers
  401/403 with a WWW-Authenticate challenge.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import Authenticator, AuthError, refuse
from .identity import set_identity

LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")
PROBES = ("/healthz", "/readyz")


def split_host(value: str) -> tuple[str, str | None]:
    value = value.strip().lower()
    if value.startswith("["):  # [v6]:port
        end = value.find("]")
        host, rest = value[: end + 1], value[end + 1 :]
        return host, rest[1:] if rest.startswith(":") else None
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, port
    return value, None


class HostRules:
    def __init__(self, allowed: list[str] | None) -> None:
        """`allowed` None means any host."""
        self.any = allowed is None or "*" in allowed
        self._rules = [split_host(a) for a in (allowed or [])]

    def allows(self, host_header: str) -> bool:
        if self.any:
            return True
        host, port = split_host(host_header)
        return any(host == h and (p is None or p == port) for h, p in self._rules)

    def allows_origin(self, origin: str, host_header: str) -> bool:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        origin_host = parts.netloc.lower().rsplit("@", 1)[-1]
        if not self.any:
            return self.allows(origin_host)
        name = split_host(origin_host)[0]
        return name == split_host(host_header)[0] or name in LOCAL_NAMES


class GatewayGuard:
    def __init__(self, app: ASGIApp, *, hosts: HostRules, mcp_path: str, auth: Authenticator) -> None:
        self.app = app
        self.hosts = hosts
        self.mcp_path = mcp_path
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.hosts.allows(host):
            await _reject(send, 421, f"Host {host!r} is not allowed: add it to ALLOWED_HOSTS")
            return
        origin = headers.get("origin")
        if origin is not None and not self.hosts.allows_origin(origin, host):
            await _reject(send, 403, f"Origin {origin!r} is not allowed: add its host to ALLOWED_HOSTS")
            return
        if _under(scope["path"], self.mcp_path):
            client = scope.get("client")
            try:
                identity = await self.auth.authenticate(headers.get("authorization"), client[0] if client else None)
            except AuthError as exc:
                sent = bool(headers.get("authorization"))
                await refuse(send, exc, resource_metadata_url=self.auth.resource_metadata_url, token_sent=sent)
                return
            set_identity(scope, identity)
        await self.app(scope, receive, send)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


async def _reject(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
