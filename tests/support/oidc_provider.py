"""A real OpenID provider (npm `oidc-provider`) on loopback, and tokens good and bad.

Good tokens come from the provider itself: the client-credentials grant with a resource
indicator. Bad ones are made here the ways an attacker or a misconfiguration would:
with the provider's own key but wrong claims, with a key it never published, unsigned,
or HMAC-signed with its public key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx2
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.support.procs import REPO, free_port, stop_process, wait_for_line

SCRIPT = REPO / "tests" / "support" / "oidc" / "provider.mjs"


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key))
    return {**jwk, "kid": kid, "use": "sig", "alg": "ES256"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OpenIDProvider:
    def __init__(
        self, root: Path, clients: dict[str, str], resource_scopes: str = "tasks admin", *, registration: bool = False
    ) -> None:
        """`clients`: client id -> the scopes it may ask for; `registration`: dynamic client
        registration open (as MCP clients such as Claude Code expect)."""
        if not (SCRIPT.parent / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("oidc-provider is not installed: run `make setup` (npm ci in tests/support/oidc)")
        self.root = root
        self.port = free_port()
        self.clients = clients
        self.resource_scopes = resource_scopes
        self.registration = registration
        self.keys = [("key-1", new_key())]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def signing_key(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        return self.keys[0]

    def secret(self, client_id: str) -> str:
        return f"{client_id}-secret-for-tests"

    def start(self) -> OpenIDProvider:
        self.root.mkdir(parents=True, exist_ok=True)
        config = {
            "port": self.port,
            "jwks": {"keys": [private_jwk(key, kid) for kid, key in self.keys]},
            "alg": "ES256",
            "clients": [
                {"client_id": c, "client_secret": self.secret(c), "scope": scope} for c, scope in self.clients.items()
            ],
            "resource_scopes": self.resource_scopes,
            "registration": self.registration,
        }
        path = self.root / "provider.json"
        path.write_text(json.dumps(config))
        log_path = self.root / "provider.log"
        seen = log_path.stat().st_size if log_path.exists() else 0  # a restart appends
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(["node", str(SCRIPT), str(path)], stdout=log, stderr=subprocess.STDOUT)
        wait_for_line(self.proc, log_path, b"ready ", 30, what="oidc-provider", offset=seen)
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def requests(self) -> list[str]:
        """`METHOD /path` of every request the provider received (all starts)."""
        log = (self.root / "provider.log").read_text(errors="replace")
        return [line.removeprefix("request ") for line in log.splitlines() if line.startswith("request ")]

    def rotate(self) -> None:
        """A new signing key replaces the old one, as an operator rotating keys does."""
        self.stop()
        self.keys = [(f"key-{len(self.keys) + 1}-{int(time.time())}", new_key())]
        self.start()

    def token(self, client_id: str, *, resource: str, scope: str = "tasks") -> str:
        response = httpx2.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "scope": scope, "resource": resource},
            auth=(client_id, self.secret(client_id)),
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    # -- bad tokens -------------------------------------------------------------------
    def forge(
        self, claims: dict[str, Any], *, key: ec.EllipticCurvePrivateKey | None = None, kid: str | None = None
    ) -> str:
        """Signed with the provider's own key unless another is given."""
        signing_kid, signing_key = self.signing_key
        return jwt.encode(
            claims, key or signing_key, algorithm="ES256", headers={"kid": kid or signing_kid, "typ": "at+jwt"}
        )

    def claims(self, sub: str, resource: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer,
            "sub": sub,
            "aud": resource,
            "iat": now,
            "exp": now + 600,
            "scope": "tasks",
        } | overrides

    def unsigned(self, claims: dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{header}.{_b64(json.dumps(claims).encode())}."

    def hmac_with_public_key(self, claims: dict[str, Any]) -> str:
        """The classic key-confusion attack: HS256 keyed with the published public key."""
        kid, key = self.signing_key
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"
