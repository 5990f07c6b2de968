"""The authorization server's signing keys: discovered from its metadata, cached, and read
again when a token names a key id the cache does not know (key rotation)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import jwt

from .errors import AuthUnavailable, InvalidToken

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SigningKey:
    kty: str  # RSA, EC or OKP
    alg: str | None  # the algorithm the key is pinned to, when the issuer says
    key: Any  # a cryptography public key


MAX_AGE_SECONDS = 3600.0  # keys are read again at least this often (removed keys stop working)
REFRESH_COOLDOWN_SECONDS = 5.0  # unknown key ids cannot make the gateway hammer the issuer


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer publishes its metadata: OpenID Connect Discovery appends the
    well-known path; RFC 8414 inserts it between host and path."""
    parts = urlsplit(issuer)
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [f"{issuer.rstrip('/')}/.well-known/openid-configuration"]
    urls.append(f"{base}/.well-known/oauth-authorization-server{path}")
    if path:
        urls.append(f"{base}/.well-known/openid-configuration{path}")
    return urls


class JwksCache:
    def __init__(self, issuer: str, jwks_url: str | None = None, *, http: httpx2.AsyncClient | None = None) -> None:
        self.issuer = issuer
        self._jwks_url = jwks_url
        self._http = http or httpx2.AsyncClient(timeout=httpx2.Timeout(10.0, connect=5.0))
        self._keys: dict[str | None, SigningKey] = {}
        self._fetched_at = 0.0
        self._lock = anyio.Lock()

    async def key(self, kid: str | None) -> SigningKey:
        """The key for `kid` (or the only key, for a token without one)."""
        if not self._keys or time.monotonic() - self._fetched_at > MAX_AGE_SECONDS:
            await self._refresh()
        found = self._find(kid)
        if found is None and time.monotonic() - self._fetched_at >= REFRESH_COOLDOWN_SECONDS:
            await self._refresh()
            found = self._find(kid)
        if found is None:
            raise InvalidToken(f"the token is signed with a key the issuer does not publish (kid {kid!r})")
        return found

    def _find(self, kid: str | None) -> SigningKey | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        started = time.monotonic()
        async with self._lock:
            if self._fetched_at > started:
                return  # another request refreshed while this one waited
            try:
                url = self._jwks_url or await self._discover()
                document = await self._get_json(url)
            except (httpx2.HTTPError, ValueError) as exc:
                log.warning("could not read the signing keys of OAUTH_ISSUER %s: %s", self.issuer, exc)
                if self._keys:
                    return  # keep serving with the keys we have
                raise AuthUnavailable(
                    f"the gateway cannot read the signing keys of its authorization server ({self.issuer}); "
                    "try again shortly"
                ) from None
            self._keys = _usable_keys(document)
            self._fetched_at = time.monotonic()
            log.info("read %d signing keys from %s", len(self._keys), url)

    async def _discover(self) -> str:
        last: Exception | None = None
        for url in metadata_urls(self.issuer):
            try:
                metadata = await self._get_json(url)
            except (httpx2.HTTPError, ValueError) as exc:
                last = exc
                continue
            if metadata.get("issuer") != self.issuer:
                raise ValueError(f"{url} names issuer {metadata.get('issuer')!r}, not OAUTH_ISSUER {self.issuer!r}")
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ValueError(f"{url} has no jwks_uri: set OAUTH_JWKS_URL")
            self._jwks_url = jwks_uri
            return jwks_uri
        raise ValueError(f"no issuer metadata found at {', '.join(metadata_urls(self.issuer))} ({last})")

    async def _get_json(self, url: str) -> dict[str, Any]:
        response = await self._http.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return body

    async def aclose(self) -> None:
        await self._http.aclose()


def _usable_keys(document: dict[str, Any]) -> dict[str | None, SigningKey]:
    """Public signing keys only: symmetric (`oct`) keys and encryption keys are skipped."""
    keys: dict[str | None, SigningKey] = {}
    for raw in document.get("keys") or []:
        if not isinstance(raw, dict) or raw.get("kty") not in ("RSA", "EC", "OKP") or raw.get("use", "sig") != "sig":
            continue
        try:
            parsed = jwt.PyJWK(raw)
            keys[raw.get("kid")] = SigningKey(kty=raw["kty"], alg=raw.get("alg"), key=parsed.key)
        except jwt.PyJWTError as exc:
            log.warning("skipping signing key %s: %s", raw.get("kid"), exc)
    return keys
