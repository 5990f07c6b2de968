"""Who may talk to the gateway: Host and Origin checks, and the bearer token.

An ASGI middleware in front of everything but the probes (/healthz, /readyz) and /metrics,
which kubelets and Prometheus call by pod IP without credentials.

* Host: ALLOWED_HOSTS entries are host names with or without a port; without one, any
  port matches. Unset and bound to loopback: only localhost names (DNS-rebinding
  protection). Unset and bound to all interfaces: any Host.
* Origin (sent by browsers; see `OriginRules`): served only when the origin is allowed
  explicitly. Several Origin headers, or a malformed one, are refused too (403). An Origin
  naming the request's own Host proves nothing (DNS rebinding makes them equal).
* Who calls, on the MCP path: the `auth` package's authenticator (static tokens, API
  keys, OAuth access tokens) stores the caller's `Identity` in the scope
  (`identity.set_identity`), or answers 401/403 with a WWW-Authenticate challenge. With no
  authentication configured the caller is `anonymous(<client address>)`.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth import Authenticator, AuthError, refuse, set_identity

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
        self, app: ASGIApp, *, hosts: HostRules, origins: OriginRules, mcp_path: str, auth: Authenticator
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = origins
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
        origins = [v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"]
        if len(origins) > 1:
            await _reject(send, 403, "several Origin headers: send at most one")
            return
        if origins and not self.origins.allows(origins[0]):
            await _reject(send, 403, f"Origin {origins[0][:200]!r} is not allowed: add it to ALLOWED_ORIGINS")
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
