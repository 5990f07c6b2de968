"""The whole ASGI app in process (httpx2.ASGITransport): probes, the guard, and MCP behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from opencode_mcp_gateway.app import create_app
from tests.support.client import INITIALIZE, MCP_HEADERS
from tests.support.fake_opencode import VERSION, FakeOpenCode
from tests.support.in_memory import settings_for

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-for-tests"


@asynccontextmanager
async def app_client(fake: FakeOpenCode, **settings: Any) -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(settings_for(**settings), opencode_transport=fake.transport)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://localhost:8080") as http,
    ):
        yield http


async def test_probes_answer_without_credentials_from_any_host() -> None:
    fake = FakeOpenCode()
    async with app_client(fake, host="127.0.0.1", mcp_bearer_token=TOKEN) as http:
        health = await http.get("/healthz", headers={"host": "10.1.2.3:8080"})
        ready = await http.get("/readyz")
        fake.down = True
        not_ready = await http.get("/readyz")
    assert health.status_code == 200 and health.json()["opencode"] == {"healthy": True, "version": VERSION}
    assert ready.text == "ready"
    assert not_ready.status_code == 503 and "unreachable" in not_ready.text


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ({"host": "evil.example"}, 421, "Host 'evil.example' is not allowed: add it to ALLOWED_HOSTS"),
        ({"origin": "https://evil.example"}, 403, "Origin 'https://evil.example' is not allowed"),
        ({}, 401, "this gateway needs a bearer token"),
        ({"authorization": "Bearer wrong"}, 401, "the bearer token is not valid"),
        ({"authorization": f"Basic {TOKEN}"}, 401, "send the token as `Authorization: Bearer <token>`"),
    ],
)
async def test_the_guard_refuses_with_a_reason(headers: dict[str, str], status: int, says: str) -> None:
    async with app_client(FakeOpenCode(), host="127.0.0.1", mcp_bearer_token=TOKEN) as http:
        response = await http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})
    body = response.json()
    assert response.status_code == status and says in body.get("error_description", body["error"])
    if status == 401:
        assert body["error"] == "invalid_token" and response.headers["www-authenticate"].startswith("Bearer ")


async def test_tools_are_served_behind_the_guard() -> None:
    auth = {"authorization": f"Bearer {TOKEN}", "origin": "http://localhost:3000"}
    async with app_client(FakeOpenCode(), host="127.0.0.1", mcp_bearer_token=TOKEN) as http:
        http.headers.update(auth)
        async with (
            streamable_http_client("http://localhost:8080/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            health = await session.call_tool("health_check", {})
    assert health.structured_content is not None
    assert health.structured_content["opencode"]["version"] == VERSION
