"""Who may talk to the gateway: Host and Origin checks, and the bearer token.

An ASGI middleware in front of everything but the probes (/healthz, /readyz), which
kubelets call by pod IP without credentials.

* Host: ALLOWED_HOSTS entries are host names with or without a port; without one, any
  port matches. Unset and bound to loopback: only localhost names (DNS-rebinding
  protection). Unset and bound to all interfaces: any Host.
* Origin (sent by browsers; see `OriginRules`): served only when the origin is allowed
  explicitly. Several Origin headers, or a malformed one, are refused too (403). An Origin
  naming the request's own Host proves nothing (DNS rebinding makes them equal).
* MCP_BEARER_TOKEN: `Authorization: Bearer <token>` on the MCP path, compared in
  constant time, else 401.

The guard records who calls (`identity.set_identity`): "default" when the bearer token
matched, `anonymous(<client address>)` when no authentication is configured.
"""

from __future__ import annotations

import hmac
import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from .identity import Identity, anonymous, set_identity

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


DEFAULT_PORTS = {"http": "80", "https": "443"}


def parse_origin(value: str) -> tuple[str, str, str] | None:
    """(scheme, host, port) of a well-formed origin, `scheme://host[:port]` and nothing
    more (no user info, path, query or fragment); None otherwise ("null" included)."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or "\\" in value:
        return None
    host = split_host(parts.netloc)[0]
    return parts.scheme, host, str(port) if port is not None else DEFAULT_PORTS[parts.scheme]


class OriginRules:
    """Which browser origins may call: ALLOWED_ORIGINS if given; else origins whose host
    ALLOWED_HOSTS allows; else, bound to loopback, localhost origins; else none."""

    def __init__(self, origins: list[str], hosts: list[str], *, loopback: bool) -> None:
        self._origins = {o for o in (parse_origin(x) for x in origins) if o}
        self._hosts = HostRules(hosts) if hosts else None
        self._local = loopback

    def allows(self, origin: str) -> bool:
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        _, host, port = parsed
        if self._origins:
            return parsed in self._origins
        if self._hosts is not None:
            return not self._hosts.any and self._hosts.allows(f"{host}:{port}")
        return self._local and host in LOCAL_NAMES


class GatewayGuard:
    def __init__(
        self, app: ASGIApp, *, hosts: HostRules, origins: OriginRules, mcp_path: str, token: str | None
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = origins
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
        origins = [v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"]
        if len(origins) > 1:
            await _reject(send, 403, "several Origin headers: send at most one")
            return
        if origins and not self.origins.allows(origins[0]):
            await _reject(send, 403, f"Origin {origins[0][:200]!r} is not allowed: add it to ALLOWED_ORIGINS")
            return
        if self.token is not None and _under(scope["path"], self.mcp_path):
            identity = self._bearer_identity(headers)
            if identity is None:
                await _reject(
                    send,
                    401,
                    "missing or wrong bearer token: send Authorization: Bearer <MCP_BEARER_TOKEN>",
                    extra=[(b"www-authenticate", b'Bearer realm="opencode-mcp-gateway"')],
                )
                return
            set_identity(scope, identity)
        elif self.token is None:
            client = scope.get("client")
            set_identity(scope, anonymous(client[0] if client else None))
        await self.app(scope, receive, send)

    def _bearer_identity(self, headers: dict[str, str]) -> Identity | None:
        """The caller when the request carries the bearer token, else None."""
        assert self.token is not None
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), self.token):
            return Identity("default")
        return None


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


async def _reject(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
