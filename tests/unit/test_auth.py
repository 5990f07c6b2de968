from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from mcp.server.mcpserver.exceptions import ToolError

from opencode_mcp_gateway.auth import (
    Authenticator,
    AuthUnavailable,
    InsufficientScope,
    InvalidToken,
    KeysFileError,
    StaticTokens,
)
from opencode_mcp_gateway.auth.answers import challenge
from opencode_mcp_gateway.auth.identity import Identity, set_identity
from opencode_mcp_gateway.auth.jwks import JwksCache, metadata_urls
from opencode_mcp_gateway.auth.jwt_tokens import token_scopes
from opencode_mcp_gateway.auth.static_tokens import parse_keys
from opencode_mcp_gateway.opencode import Session
from opencode_mcp_gateway.tasks.ownership import Caller, acting_as, may_see, owner_to_record
from opencode_mcp_gateway.tools.callers import caller_of

pytestmark = pytest.mark.anyio


def test_metadata_is_looked_up_the_oidc_way_then_the_rfc_8414_way() -> None:
    assert metadata_urls("https://sso.example.com") == [
        "https://sso.example.com/.well-known/openid-configuration",
        "https://sso.example.com/.well-known/oauth-authorization-server",
    ]
    assert metadata_urls("https://kc.example.com/realms/dev") == [
        "https://kc.example.com/realms/dev/.well-known/openid-configuration",
        "https://kc.example.com/.well-known/oauth-authorization-server/realms/dev",
        "https://kc.example.com/.well-known/openid-configuration/realms/dev",
    ]


def test_scopes_come_from_scope_or_scp() -> None:
    assert token_scopes({"scope": "tasks admin"}) == {"tasks", "admin"}
    assert token_scopes({"scp": ["tasks", "x"]}) == {"tasks", "x"}
    assert token_scopes({"scp": "tasks"}) == {"tasks"}
    assert token_scopes({}) == frozenset()


def test_challenges() -> None:
    url = "https://gw.example.com/.well-known/oauth-protected-resource/mcp"
    assert (
        challenge(InvalidToken("x"), resource_metadata_url=url, token_sent=False) == f'Bearer resource_metadata="{url}"'
    )
    sent = challenge(InvalidToken('bad "quote"'), resource_metadata_url=url, token_sent=True)
    assert sent == f'Bearer resource_metadata="{url}", error="invalid_token", error_description="bad \'quote\'"'
    scope = challenge(InsufficientScope("lacks", ["tasks"]), resource_metadata_url=url, token_sent=True)
    assert scope.endswith('error="insufficient_scope", error_description="lacks", scope="tasks"')
    assert challenge(None, resource_metadata_url=None, token_sent=False) == 'Bearer realm="opencode-mcp-gateway"'


def test_keys_file_lines() -> None:
    pairs = parse_keys("# comment\n\nci-bot  0123456789abcdef0\nops 0123456789abcdefX\n", "f")
    assert pairs == [("ci-bot", b"0123456789abcdef0"), ("ops", b"0123456789abcdefX")]
    for bad in ("one-field\n", "a b c\n", "bad/name 0123456789abcdef0\n"):
        with pytest.raises(KeysFileError, match="line 1"):
            parse_keys(bad, "f")


async def test_static_tokens_and_the_keys_file_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys"
    keys.write_text("ci-bot 0123456789abcdef0\n")
    auth = Authenticator(StaticTokens("the-shared-token-value", str(keys)))
    assert (await auth.authenticate("Bearer the-shared-token-value", "1.2.3.4")).name == "default"
    assert (await auth.authenticate("bearer 0123456789abcdef0", None)).name == "ci-bot"
    for header in (None, "", "Bearer", "Basic 0123456789abcdef0", "Bearer nope"):
        with pytest.raises(InvalidToken):
            await auth.authenticate(header, None)
    keys.write_text("ci-bot 0123456789abcdef1-new\n")
    monkeypatch.setattr("opencode_mcp_gateway.auth.static_tokens.RECHECK_SECONDS", 0.0)
    time.sleep(0.01)
    assert (await auth.authenticate("Bearer 0123456789abcdef1-new", None)).name == "ci-bot"
    with pytest.raises(InvalidToken):
        await auth.authenticate("Bearer 0123456789abcdef0", None)
    keys.write_text("broken line here\n")  # a bad edit keeps the keys read before
    assert (await auth.authenticate("Bearer 0123456789abcdef1-new", None)).name == "ci-bot"


async def test_without_any_method_everyone_is_anonymous() -> None:
    auth = Authenticator(StaticTokens(None, None))
    caller = await auth.authenticate("Bearer whatever", "10.0.0.1")
    assert caller.name == "anonymous@10.0.0.1" and not caller.authenticated


def ctx_with(identity: Identity | None) -> Any:
    scope: dict[str, Any] = {"type": "http"}
    if identity is not None:
        set_identity(scope, identity)
    request = SimpleNamespace(scope=scope) if identity is not None else None
    return SimpleNamespace(request_context=SimpleNamespace(request=request))


def test_callers() -> None:
    assert caller_of(ctx_with(Identity("alice")), auth_configured=True) == Caller("alice")
    assert caller_of(ctx_with(Identity("root", admin=True)), auth_configured=True).admin
    anon = Identity("anonymous@1.2.3.4", authenticated=False)
    assert caller_of(ctx_with(anon), auth_configured=False) == Caller("default")
    assert caller_of(ctx_with(anon), auth_configured=True) == Caller("anonymous")
    assert caller_of(ctx_with(None), auth_configured=False) == Caller("default")  # in-process, single user
    with pytest.raises(ToolError, match="no identity"):
        caller_of(ctx_with(None), auth_configured=True)


def test_ownership_rules() -> None:
    ownerless = Session(id="ses_1", metadata={"createdBy": "opencode-mcp-gateway"})
    alices = Session(id="ses_2", metadata={"owner": "alice"})
    assert may_see(ownerless, Caller("default")) and not may_see(ownerless, Caller("alice"))
    assert may_see(alices, Caller("alice")) and not may_see(alices, Caller("default"))
    assert may_see(alices, Caller("root", admin=True))
    assert may_see(alices)  # background work acts for nobody in particular
    with acting_as(Caller("alice")):
        assert owner_to_record() == "alice" and not may_see(ownerless)
    with acting_as(Caller("default")):
        assert owner_to_record() is None  # `default`'s tasks stay readable by older gateways' rules


def jwks_cache(routes: dict[str, Any], issuer: str = "https://sso.example.com") -> JwksCache:
    def answer(request: httpx2.Request) -> httpx2.Response:
        body = routes.get(str(request.url))
        return httpx2.Response(404) if body is None else httpx2.Response(200, json=body)

    return JwksCache(issuer, http=httpx2.AsyncClient(transport=httpx2.MockTransport(answer)))


async def test_keys_that_cannot_be_read_are_a_503_not_the_callers_fault() -> None:
    with pytest.raises(AuthUnavailable, match="cannot read the signing keys"):
        await jwks_cache({}).key("k1")
    other = {"https://sso.example.com/.well-known/openid-configuration": {"issuer": "https://evil.example.com"}}
    with pytest.raises(AuthUnavailable):  # metadata that names another issuer is not trusted
        await jwks_cache(other).key("k1")


async def test_only_public_signing_keys_are_kept() -> None:
    ec_key = {**json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())), "kid": "ec"}
    keys = {
        "keys": [
            ec_key,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {**ec_key, "kid": "enc", "use": "enc"},
        ]
    }
    routes = {
        "https://sso.example.com/.well-known/openid-configuration": {
            "issuer": "https://sso.example.com",
            "jwks_uri": "https://sso.example.com/jwks",
        },
        "https://sso.example.com/jwks": keys,
    }
    cache = jwks_cache(routes)
    assert (await cache.key("ec")).kty == "EC"
    for kid in ("hmac", "enc", "missing"):
        with pytest.raises(InvalidToken, match="does not publish"):
            await cache.key(kid)
