"""The OAuth 2.0 Protected Resource Metadata document (RFC 9728).

Served at `/.well-known/oauth-protected-resource` and at that path followed by MCP_PATH
(the form RFC 9728 derives from the resource URL), only when OAUTH_ISSUER is set.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..config import Settings

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def resource_metadata_url(settings: Settings) -> str | None:
    return f"{settings.public_url}{WELL_KNOWN}{settings.mcp_path}" if settings.oauth_issuer else None


def resource_metadata(settings: Settings) -> dict[str, Any]:
    scopes = [*settings.required_scope_list]
    if settings.oauth_admin_scope and settings.oauth_admin_scope not in scopes:
        scopes.append(settings.oauth_admin_scope)
    return {
        "resource": settings.resource_url,
        "authorization_servers": [settings.oauth_issuer],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": "opencode-mcp-gateway",
    }


def metadata_routes(settings: Settings) -> list[Route]:
    if not settings.oauth_issuer:
        return []  # the paths stay unknown: 404
    document = resource_metadata(settings)

    async def serve(_: Request) -> JSONResponse:
        return JSONResponse(document, headers={"cache-control": "public, max-age=3600"})

    return [Route(WELL_KNOWN, serve, methods=["GET"]), Route(WELL_KNOWN + settings.mcp_path, serve, methods=["GET"])]
