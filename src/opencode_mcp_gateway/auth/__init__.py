"""Authentication: static tokens, API keys and OAuth 2.1 access tokens (resource server).

* `static_tokens`: MCP_BEARER_TOKEN and MCP_API_KEYS_FILE.
* `jwks`, `jwt_tokens`: JWT access tokens from OAUTH_ISSUER, its keys cached and refreshed.
* `chain`: which method identifies a request.
* `answers`: the 401/403 answers and their WWW-Authenticate challenge.
* `metadata`: the RFC 9728 document that points clients to the authorization server.
* `identity`: who the caller is, as the guard stored it for the request.
* `exposure`: the start-up refusal of a non-loopback gateway without authentication.

Arrows: auth may import `config`; nothing else of the gateway.
"""

from __future__ import annotations

from ..config import Settings, auth_methods
from .answers import refuse
from .chain import Authenticator
from .errors import AuthError, AuthUnavailable, InsufficientScope, InvalidToken
from .exposure import exposure_refusal
from .identity import Identity, anonymous, identity_of_request, identity_of_scope, set_identity
from .jwks import JwksCache
from .jwt_tokens import JwtVerifier
from .metadata import metadata_routes, resource_metadata_url
from .static_tokens import KeysFileError, StaticTokens

__all__ = [
    "AuthError",
    "AuthUnavailable",
    "Authenticator",
    "Identity",
    "InsufficientScope",
    "InvalidToken",
    "KeysFileError",
    "StaticTokens",
    "anonymous",
    "build_authenticator",
    "exposure_refusal",
    "identity_of_request",
    "identity_of_scope",
    "metadata_routes",
    "refuse",
    "set_identity",
]


def build_authenticator(settings: Settings) -> Authenticator:
    """Raises KeysFileError for an unusable MCP_API_KEYS_FILE."""
    bearer = settings.mcp_bearer_token.get_secret_value() if settings.mcp_bearer_token else None
    static = StaticTokens(bearer or None, settings.mcp_api_keys_file)
    oauth = None
    if settings.oauth_issuer:
        oauth = JwtVerifier(
            JwksCache(settings.oauth_issuer, settings.oauth_jwks_url),
            audience=settings.oauth_audience or str(settings.resource_url),
            required_scopes=settings.required_scope_list,
            admin_scope=settings.oauth_admin_scope,
        )
    return Authenticator(
        static,
        oauth,
        resource_metadata_url=resource_metadata_url(settings),
        # ALLOW_UNAUTHENTICATED comes with the security issue's settings.
        allow_anonymous=bool(getattr(settings, "allow_unauthenticated", False)) and bool(auth_methods(settings)),
    )
