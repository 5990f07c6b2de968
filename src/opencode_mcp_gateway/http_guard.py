"""Who may talk to the gateway: Host and Origin checks, and the bearer token.

An ASGI middleware in front of everything but the probes (/healthz, /readyz) and /metrics,
which kubelets and Prometheus call by pod IP without credentials.

* Host: ALLOWED_HOSTS entries are host names with or without a port; without one, any
  port matches. Unset and bound to loopback: only localhost names (DNS-rebinding
  protection). Unset and bound to all interfaces: any Host.
* Origin (sent by browsers): must name an allowed host; with any Host allowed it must
  name the request's own host or localhost. Otherwise 403.
* MCP_BEARER_TOKEN: `Authorization: Bearer <token>` on the MCP path, compared in
  constant time, else 401.
"""

from __future__ import annotations

import hmac
import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")
PROBES = ("/healthz", "/readyz", "/metrics")  # scraped by pod IP, like the probes


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
    def __init__(self, app: ASGIApp, *, hosts: HostRules, mcp_path: str, token: str | None) -> None:
        self.app = app
        self.hosts = hosts
        self.mcp_path = mcp_path
        self.token = token.encode() if token else None

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
        if self.token is not None and _under(scope["path"], self.mcp_path):
            given = headers.get("authorization", "")
            scheme, _, credential = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip().encode(), self.token):
                await _reject(
                    send,
                    401,
                    "missing or wrong bearer token: send Authorization: Bearer <MCP_BEARER_TOKEN>",
                    extra=[(b"www-authenticate", b'Bearer realm="opencode-mcp-gateway"')],
                )
                return
        await self.app(scope, receive, send)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


async def _reject(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
