"""Who calls: OAuth access tokens from a real OpenID provider, API keys, the shared token;
tasks that belong to their caller; list_tasks."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import mcp
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.test_long_tasks import outside_file, write_outside
from tests.support.client import data, error_text, mcp_session, script
from tests.support.oidc_provider import OpenIDProvider, new_key
from tests.support.procs import Gateway, OpenCodeServer
from tests.support.scrape import scrape

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SHARED_TOKEN = "shared-token-of-the-default-identity"
CI_KEY = "ci-bot-key-0123456789abcdef"
OPS_KEY = "ops-key-0123456789abcdef0123"
CLIENTS = {
    "alice": "tasks",
    "bob": "tasks",
    "carol": "tasks",
    "dave": "tasks",
    "root": "tasks admin",
    "guest": "read",
}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIDProvider]:
    provider = OpenIDProvider(tmp_path_factory.mktemp("idp"), CLIENTS, "tasks admin read").start()
    yield provider
    provider.stop()


def oauth_gateway(root: Path, opencode: OpenCodeServer, idp: OpenIDProvider, **extra: str) -> Gateway:
    keys = root / "api-keys"
    keys.write_text(f"# name token\nci-bot {CI_KEY}\nops {OPS_KEY}\n")
    env = {
        "OPENCODE_BASE_URL": opencode.url,
        "OAUTH_ISSUER": idp.issuer,
        "OAUTH_REQUIRED_SCOPES": "tasks",
        "OAUTH_ADMIN_SCOPE": "admin",
        "MCP_BEARER_TOKEN": SHARED_TOKEN,
        "MCP_API_KEYS_FILE": str(keys),
        **extra,
    }
    gateway = Gateway(root, env)
    gateway.env["PUBLIC_URL"] = gateway.url  # what clients use; tokens are issued for it + /mcp
    return gateway.start()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, opencode: OpenCodeServer, idp: OpenIDProvider) -> Iterator[Gateway]:
    gateway = oauth_gateway(tmp_path_factory.mktemp("oauth-gw"), opencode, idp)
    yield gateway
    gateway.stop()


def token(idp: OpenIDProvider, gw: Gateway, client: str) -> str:
    return idp.token(client, resource=gw.mcp_url, scope=CLIENTS[client])


def as_user(gw: Gateway, bearer: str) -> Any:
    return mcp_session(gw.mcp_url, headers={"Authorization": f"Bearer {bearer}"})


def post_init(gw: Gateway, bearer: str | None = None) -> httpx2.Response:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    return httpx2.post(gw.mcp_url, json=INIT, headers=headers, timeout=10)


async def start_task(s: ClientSession, title: str) -> str:
    args = {"prompt": script({"text": f"{title} done."}), "title": title}
    return str(data(await s.call_tool("run_coding_task_async", args))["task_id"])


async def finish(s: ClientSession, task_id: str) -> dict[str, Any]:
    view = data(await s.call_tool("get_task_status", {"task_id": task_id, "wait_seconds": 60}))
    assert view["status"] == "completed", view
    return view


# -- the resource server's answers ----------------------------------------------------------
async def test_metadata_document_and_challenge_point_clients_to_the_issuer(
    gw: Gateway, idp: OpenIDProvider, gateway: Gateway
) -> None:
    where = f"{gw.url}/.well-known/oauth-protected-resource/mcp"
    for url in (where, f"{gw.url}/.well-known/oauth-protected-resource"):
        document = httpx2.get(url).json()
        assert document["resource"] == gw.mcp_url
        assert document["authorization_servers"] == [idp.issuer]
        assert document["scopes_supported"] == ["tasks", "admin"]
        assert document["bearer_methods_supported"] == ["header"]
    missing = post_init(gw)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == f'Bearer resource_metadata="{where}"'
    wrong = post_init(gw, "not-a-token")
    assert wrong.status_code == 401
    challenge = wrong.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer resource_metadata="{where}", error="invalid_token"'), challenge
    # Without OAuth configured the paths stay unknown.
    assert httpx2.get(f"{gateway.url}/.well-known/oauth-protected-resource").status_code == 404
    assert httpx2.get(f"{gateway.url}/.well-known/oauth-protected-resource/mcp").status_code == 404


def bad_tokens(idp: OpenIDProvider, gw: Gateway) -> dict[str, str]:
    resource = gw.mcp_url
    past = int(time.time()) - 3600
    return {
        "expired": idp.forge(idp.claims("alice", resource, iat=past - 600, exp=past)),
        "not yet valid": idp.forge(idp.claims("alice", resource, nbf=int(time.time()) + 3600)),
        "another resource": idp.token("alice", resource="https://other.example.com/mcp"),
        "another issuer": idp.forge(idp.claims("alice", resource, iss="https://evil.example.com")),
        "unknown key": idp.forge(idp.claims("alice", resource), key=new_key(), kid="not-published"),
        "known kid, other key": idp.forge(idp.claims("alice", resource), key=new_key()),
        "alg none": idp.unsigned(idp.claims("alice", resource)),
        "HMAC with the public key": idp.hmac_with_public_key(idp.claims("alice", resource)),
        "garbage": "eyJhbGciOi.broken.token",
    }


async def test_refused_tokens_get_401_invalid_token(gw: Gateway, idp: OpenIDProvider) -> None:
    assert post_init(gw, token(idp, gw, "alice")).status_code == 200  # the real thing works
    for case, bad in bad_tokens(idp, gw).items():
        answer = post_init(gw, bad)
        assert answer.status_code == 401, case
        assert 'error="invalid_token"' in answer.headers["www-authenticate"], case
        assert answer.json()["error"] == "invalid_token", case
    for bad in bad_tokens(idp, gw).values():
        assert bad not in gw.logs()


async def test_a_token_without_the_required_scope_gets_403(gw: Gateway, idp: OpenIDProvider) -> None:
    answer = post_init(gw, token(idp, gw, "guest"))
    assert answer.status_code == 403
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="tasks"' in challenge, challenge


# -- tasks belong to their caller -----------------------------------------------------------
TASK_TOOLS: list[tuple[str, dict[str, Any]]] = [
    ("get_task_status", {}),
    ("get_task_status", {"wait_seconds": 1}),
    ("get_task_messages", {}),
    ("get_task_diff", {}),
    ("abort_task", {}),
    ("respond_to_task", {"request_id": "per_0123456789abcdef", "reply": "once"}),
    ("run_coding_task_async", {"prompt": "continue"}),
    ("run_coding_task", {"prompt": "continue", "timeout_seconds": 5}),
]


async def errors_for(s: ClientSession, task_id: str) -> list[str]:
    found = []
    for tool, args in TASK_TOOLS:
        result = await s.call_tool(tool, {**args, "task_id": task_id})
        assert result.is_error, (tool, result)
        found.append(error_text(result))
    return found


async def test_another_callers_task_looks_exactly_like_an_unknown_one(gw: Gateway, idp: OpenIDProvider) -> None:
    async with as_user(gw, token(idp, gw, "alice")) as alice:
        mine = await start_task(alice, "alice-private")
        await finish(alice, mine)
        assert data(await alice.call_tool("get_task_messages", {"task_id": mine}))["messages"]
    session_id = mine.split(".")[0]
    missing_session = session_id[:-6] + "Zz9Zz9"
    missing = f"{missing_session}.{mine.split('.')[1]}"
    for bearer in (token(idp, gw, "bob"), CI_KEY, SHARED_TOKEN):
        async with as_user(gw, bearer) as other:
            foreign = await errors_for(other, mine)
            unknown = await errors_for(other, missing)
        assert foreign == [e.replace(missing_session, session_id) for e in unknown]
        assert all("unknown task_id" in e for e in foreign), foreign
    async with as_user(gw, token(idp, gw, "root")) as admin:  # the admin scope sees every task
        assert data(await admin.call_tool("get_task_status", {"task_id": mine}))["status"] == "completed"
    async with as_user(gw, token(idp, gw, "alice")) as alice:  # and nothing above touched it
        view = data(await alice.call_tool("get_task_status", {"task_id": mine}))
        assert view["status"] == "completed" and view["result"] == "alice-private done."


async def test_api_keys_are_identities_of_their_own(gw: Gateway, idp: OpenIDProvider) -> None:
    async with as_user(gw, CI_KEY) as ci:
        task = await start_task(ci, "ci-build")
        await finish(ci, task)
        listed = data(await ci.call_tool("list_tasks", {}))["tasks"]
    assert [t["task_id"] for t in listed] == [task]
    async with as_user(gw, OPS_KEY) as ops:
        assert data(await ops.call_tool("list_tasks", {}))["tasks"] == []
        assert (await ops.call_tool("get_task_status", {"task_id": task})).is_error
    assert post_init(gw, "ci-bot-key-0123456789abcdeX").status_code == 401


async def test_tasks_from_before_ownership_belong_to_default_and_admin(
    gw: Gateway, idp: OpenIDProvider, gateway: Gateway
) -> None:
    # A gateway without authentication records no owner, as every gateway did before.
    async with mcp_session(gateway.mcp_url) as anyone:
        old = await start_task(anyone, "ownerless")
        await finish(anyone, old)
    async with as_user(gw, SHARED_TOKEN) as default:
        assert data(await default.call_tool("get_task_status", {"task_id": old}))["status"] == "completed"
        assert old in [t["task_id"] for t in data(await default.call_tool("list_tasks", {"limit": 100}))["tasks"]]
    async with as_user(gw, token(idp, gw, "root")) as admin:
        assert data(await admin.call_tool("get_task_status", {"task_id": old}))["status"] == "completed"
    async with as_user(gw, token(idp, gw, "alice")) as alice:
        assert "unknown task_id" in error_text(await alice.call_tool("get_task_status", {"task_id": old}))


async def test_ownership_holds_on_the_sessionless_2026_protocol(gw: Gateway, idp: OpenIDProvider) -> None:
    @asynccontextmanager
    async def modern(bearer: str) -> AsyncIterator[mcp.Client]:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=30) as http,
            mcp.Client(streamable_http_client(gw.mcp_url, http_client=http)) as client,
        ):
            yield client

    async with modern(token(idp, gw, "alice")) as alice:
        assert alice.session.protocol_version == "2026-07-28"
        args = {"prompt": script({"text": "modern done."}), "title": "alice-modern"}
        mine = str(data(await alice.call_tool("run_coding_task", args))["task_id"])
        assert mine in [t["task_id"] for t in data(await alice.call_tool("list_tasks", {}))["tasks"]]
    async with modern(token(idp, gw, "bob")) as bob:
        refused = await bob.call_tool("get_task_status", {"task_id": mine})
        assert refused.is_error and "unknown task_id" in error_text(refused)
        assert mine not in [t["task_id"] for t in data(await bob.call_tool("list_tasks", {}))["tasks"]]


async def test_the_permission_policy_still_governs_owned_tasks(gateways: Any, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"ci-bot {CI_KEY}\n")
    gw = gateways.get(PERMISSION_POLICY="deny", MCP_API_KEYS_FILE=str(keys))
    target = outside_file(tmp_path)
    denied = {"kind": "permission", "outcome": "denied"}
    before = scrape(gw.url).get_value("ocgw_permission_requests_total", **denied)
    async with as_user(gw, CI_KEY) as ci:
        done = data(await ci.call_tool("run_coding_task", {"prompt": write_outside(target), "timeout_seconds": 60}))
    assert done["status"] == "completed" and not target.exists()
    assert any("denied by policy" in n for n in done["notices"])
    assert scrape(gw.url).get_value("ocgw_permission_requests_total", **denied) == before + 1


# -- list_tasks ---------------------------------------------------------------------------
async def test_list_tasks_pages_through_the_callers_own_tasks_newest_first(gw: Gateway, idp: OpenIDProvider) -> None:
    async with as_user(gw, token(idp, gw, "carol")) as carol:
        tools = {t.name: t for t in (await carol.list_tools()).tools}
        listing = tools["list_tasks"]
        assert listing.annotations.read_only_hint is True and listing.annotations.idempotent_hint is True
        assert listing.output_schema is not None and "next_cursor" in listing.output_schema["properties"]
        assert listing.input_schema["properties"]["limit"]["maximum"] == 100
        started = [await start_task(carol, f"carol-{i}") for i in range(3)]
        for task in started:
            await finish(carol, task)
        first = data(await carol.call_tool("list_tasks", {"limit": 2}))
        assert [t["task_id"] for t in first["tasks"]] == started[::-1][:2]
        assert first["next_cursor"]
        second = data(await carol.call_tool("list_tasks", {"limit": 2, "cursor": first["next_cursor"]}))
        assert [t["task_id"] for t in second["tasks"]] == started[:1] and second["next_cursor"] is None
        entry = second["tasks"][0]
        assert entry["title"].endswith("carol-0") and entry["status"] == "completed"
        assert entry["created_at"].endswith("Z") and entry["updated_at"] >= entry["created_at"]
        completed = data(await carol.call_tool("list_tasks", {"status": "completed"}))["tasks"]
        assert [t["task_id"] for t in completed] == started[::-1]
        assert data(await carol.call_tool("list_tasks", {"status": "running"}))["tasks"] == []
        bad = await carol.call_tool("list_tasks", {"cursor": "not-a-cursor"})
        assert bad.is_error and "next_cursor" in error_text(bad)
        assert (await carol.call_tool("list_tasks", {"limit": 101})).is_error
    async with as_user(gw, token(idp, gw, "dave")) as dave:
        his = await start_task(dave, "dave-0")
        assert [t["task_id"] for t in data(await dave.call_tool("list_tasks", {}))["tasks"]] == [his]
        await finish(dave, his)
    async with as_user(gw, token(idp, gw, "root")) as admin:
        everything = data(await admin.call_tool("list_tasks", {"limit": 100}))["tasks"]
    assert {his, *started} <= {t["task_id"] for t in everything}


async def test_the_callers_token_never_reaches_opencode(
    gw: Gateway, idp: OpenIDProvider, opencode: OpenCodeServer
) -> None:
    bearer = token(idp, gw, "alice")
    async with as_user(gw, bearer) as alice:
        await finish(alice, await start_task(alice, "token-check"))
    secret = bearer.encode()
    for path in [*opencode.root.rglob("*"), gw.log_path]:
        if path.is_file():
            assert secret not in path.read_bytes(), path
    assert CI_KEY not in gw.logs() and SHARED_TOKEN not in gw.logs()


# -- key rotation and start-up --------------------------------------------------------------
async def test_a_rotated_signing_key_is_picked_up(
    tmp_path: Path, opencode: OpenCodeServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    idp = OpenIDProvider(tmp_path_factory.mktemp("idp-rotating"), {"alice": "tasks"}).start()
    gw = oauth_gateway(tmp_path, opencode, idp)
    try:
        before = idp.token("alice", resource=gw.mcp_url)
        assert post_init(gw, before).status_code == 200
        idp.rotate()
        after = idp.token("alice", resource=gw.mcp_url)
        deadline = time.monotonic() + 10  # unknown key ids refresh the keys at most every 5 s
        while post_init(gw, after).status_code != 200:
            assert time.monotonic() < deadline, "the new signing key was not picked up"
            time.sleep(0.5)
        assert post_init(gw, before).status_code == 401  # the withdrawn key no longer counts
    finally:
        gw.stop()
        idp.stop()


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ("ci-bot\n", "line 1: expected `name token`"),
        ("ok-name 0123456789abcdef0\nbad name! secret-abcdef0123456789\n", "line 2"),
        ("a short\n", "shorter than 16"),
        ("a 0123456789abcdef0\nb 0123456789abcdef0\n", "already given"),
    ],
)
def test_an_unusable_keys_file_stops_start_up_without_showing_tokens(keys: str, says: str, tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(keys)
    proc = subprocess.run(
        [sys.executable, "-m", "opencode_mcp_gateway"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MCP_API_KEYS_FILE": str(path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and says in proc.stderr and "MCP_API_KEYS_FILE" in proc.stderr, proc.stderr
    assert "0123456789abcdef0" not in proc.stderr and "secret" not in proc.stderr


def test_oauth_without_public_url_is_refused_at_start_up(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "opencode_mcp_gateway"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OAUTH_ISSUER": "https://sso.example.com"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "PUBLIC_URL is required with OAUTH_ISSUER" in proc.stderr, proc.stderr


async def test_an_unreachable_issuer_is_a_503_while_api_keys_keep_working(
    tmp_path: Path, opencode: OpenCodeServer, idp: OpenIDProvider
) -> None:
    gone = OpenIDProvider(tmp_path / "gone-idp", {"alice": "tasks"})  # never started: nothing listens
    gw = oauth_gateway(tmp_path, opencode, gone)
    try:
        jwt_from_elsewhere = idp.forge(idp.claims("alice", gw.mcp_url, iss=gone.issuer))
        answer = post_init(gw, jwt_from_elsewhere)
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
        assert "cannot read the signing keys" in answer.json()["error_description"]
        assert post_init(gw, CI_KEY).status_code == 200
    finally:
        gw.stop()
