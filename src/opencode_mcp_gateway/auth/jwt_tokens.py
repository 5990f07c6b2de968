"""JWT access tokens from OAUTH_ISSUER: signature, issuer, audience, lifetime and scopes.

Only asymmetric algorithms are accepted, checked against the algorithm family of the
issuer's key: `alg: none` and HMAC (including HMAC keyed with a published public key)
are refused before any key is touched.
"""

from __future__ import annotations

from typing import Any

import jwt

from .errors import InsufficientScope, InvalidToken
from .identity import Identity
from .jwks import JwksCache

CLOCK_SKEW_SECONDS = 30
_FAMILIES = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512"),
    "OKP": ("EdDSA", "Ed25519"),
}
ASYMMETRIC = frozenset(alg for algs in _FAMILIES.values() for alg in algs)


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def token_scopes(claims: dict[str, Any]) -> frozenset[str]:
    """`scope` (RFC 9068: space-separated) or `scp` (Entra, Okta: a list or a string)."""
    found: set[str] = set()
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(str(v) for v in value)
    return frozenset(found)


class JwtVerifier:
    def __init__(
        self,
        keys: JwksCache,
        *,
        audience: str,
        required_scopes: list[str],
        admin_scope: str | None,
    ) -> None:
        self.keys = keys
        self.issuer = keys.issuer
        self.audience = audience
        self.required_scopes = required_scopes
        self.admin_scope = admin_scope

    async def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the bearer token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in ASYMMETRIC:
            raise InvalidToken(f"tokens signed with {alg!r} are not accepted: only asymmetric signatures are")
        kid = header.get("kid")
        key = await self.keys.key(kid if isinstance(kid, str) else None)
        if alg not in _FAMILIES[key.kty] or key.alg not in (None, alg):
            raise InvalidToken(f"the token's algorithm {alg} does not match its signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired: get a new one") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the token is not issued for this resource ({self.audience})") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken(f"the token is not issued by {self.issuer}") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet (nbf/iat in the future)") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token was refused: {exc}") from None
        scopes = token_scopes(claims)
        missing = [s for s in self.required_scopes if s not in scopes]
        if missing:
            raise InsufficientScope(f"the token lacks the scope(s) {' '.join(missing)}", self.required_scopes)
        admin = self.admin_scope is not None and self.admin_scope in scopes
        return Identity(name=f"{claims['iss']}#{claims['sub']}", admin=admin, scopes=scopes)
