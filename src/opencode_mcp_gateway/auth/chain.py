"""Who is calling: each configured method gets its chance at the bearer token.

Static tokens (MCP_BEARER_TOKEN, MCP_API_KEYS_FILE) are looked up first; a JWT goes to
the OAuth verifier. With no method configured at all, every caller is anonymous (the
gateway has a single user); with methods configured a request without a token is
refused unless `allow_anonymous` is set (ALLOW_UNAUTHENTICATED).
"""

from __future__ import annotations

from .errors import InvalidToken
from .identity import Identity, anonymous
from .jwt_tokens import JwtVerifier, looks_like_jwt
from .static_tokens import StaticTokens


class Authenticator:
    def __init__(
        self,
        static: StaticTokens,
        oauth: JwtVerifier | None = None,
        *,
        resource_metadata_url: str | None = None,
        allow_anonymous: bool = False,
    ) -> None:
        self.static = static
        self.oauth = oauth
        self.resource_metadata_url = resource_metadata_url
        self.allow_anonymous = allow_anonymous

    @property
    def configured(self) -> bool:
        return self.static.configured or self.oauth is not None

    async def authenticate(self, authorization: str | None, client_address: str | None) -> Identity:
        """The caller's identity; raises an AuthError that says what to send instead."""
        if not self.configured:
            return anonymous(client_address)
        if not authorization:
            if self.allow_anonymous:
                return anonymous(client_address)
            raise InvalidToken(f"this gateway needs a bearer token: {self.how_to_authenticate()}")
        scheme, _, credential = authorization.partition(" ")
        token = credential.strip()
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken("send the token as `Authorization: Bearer <token>`")
        identity = self.static.identify(token)
        if identity is not None:
            return identity
        if self.oauth is not None and looks_like_jwt(token):
            return await self.oauth.verify(token)
        raise InvalidToken(f"the bearer token is not valid: {self.how_to_authenticate()}")

    def how_to_authenticate(self) -> str:
        ways = []
        if self.static.configured:
            ways.append("the gateway's token or an API key (MCP_BEARER_TOKEN, MCP_API_KEYS_FILE)")
        if self.oauth is not None:
            ways.append(f"an access token from {self.oauth.issuer} for {self.oauth.audience}")
        return "send " + " or ".join(ways)

    async def aclose(self) -> None:
        if self.oauth is not None:
            await self.oauth.keys.aclose()
