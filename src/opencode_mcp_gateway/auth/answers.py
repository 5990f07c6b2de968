"""The gateway's answers to refused requests (RFC 6750, with RFC 9728's resource_metadata).

With OAuth configured, the challenge names the protected resource metadata, which is
how MCP clients find the authorization server and start a sign-in.
"""

from __future__ import annotations

import json

from starlette.types import Send

from .errors import AuthError, InsufficientScope


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "").replace('"', "'") + '"'


def challenge(error: AuthError | None, *, resource_metadata_url: str | None, token_sent: bool) -> str:
    params: list[tuple[str, str]] = []
    if resource_metadata_url:
        params.append(("resource_metadata", resource_metadata_url))
    else:
        params.append(("realm", "opencode-mcp-gateway"))
    if error is not None and (token_sent or isinstance(error, InsufficientScope)):
        params.append(("error", error.code))
        params.append(("error_description", str(error)))
    if isinstance(error, InsufficientScope):
        params.append(("scope", " ".join(error.scopes)))
    return "Bearer " + ", ".join(f"{k}={_quoted(v)}" for k, v in params)


async def refuse(send: Send, error: AuthError, *, resource_metadata_url: str | None, token_sent: bool) -> None:
    body = json.dumps({"error": error.code, "error_description": str(error)}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if error.status in (401, 403):
        value = challenge(error, resource_metadata_url=resource_metadata_url, token_sent=token_sent)
        headers.append((b"www-authenticate", value.encode("latin-1", "replace")))
    else:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
