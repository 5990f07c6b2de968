"""The OpenCode client maps every way a call can go wrong to one error that says what to fix."""

from __future__ import annotations

import re

import anyio
import httpx2
import pytest

from opencode_mcp_gateway.opencode import (
    OpenCodeAuthError,
    OpenCodeClient,
    OpenCodeError,
    OpenCodeNotFound,
    OpenCodeRequestError,
    OpenCodeUnavailable,
)
from tests.support.fake_opencode import FakeOpenCode

pytestmark = pytest.mark.anyio
URL = "http://opencode.test"


def client_for(fake: FakeOpenCode, **options: object) -> OpenCodeClient:
    return OpenCodeClient(URL, transport=fake.transport, **options)  # type: ignore[arg-type]


async def test_basic_auth_is_sent_and_a_refusal_names_the_settings() -> None:
    fake = FakeOpenCode(password="s3cret")
    right, wrong = client_for(fake, password="s3cret"), client_for(fake, password="nope")
    assert (await right.health()).healthy is True
    with pytest.raises(OpenCodeAuthError, match="OPENCODE_USERNAME/OPENCODE_PASSWORD"):
        await wrong.health()
    with pytest.raises(OpenCodeAuthError):
        async with wrong.stream("/global/event"):
            pass
    await right.aclose()
    await wrong.aclose()


async def test_not_found_in_both_error_shapes() -> None:
    client = client_for(FakeOpenCode())
    with pytest.raises(OpenCodeNotFound, match=r"^Session not found: ses_missing$"):
        await client.get_session("ses_missing")
    with pytest.raises(OpenCodeNotFound, match=r"^Permission request not found: per_x$"):
        await client.reply_permission("per_x", "once")
    await client.aclose()


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (500, '{"name":"UnknownError","data":{"message":"Unexpected server error."}}', "application/json",
         "OpenCode rejected GET /agent: Unexpected server error."),
        (409, '{"_tag":"SessionBusyError","message":"Session is busy"}', "application/json",
         "OpenCode rejected GET /agent: Session is busy"),
        (502, "Bad Gateway from the proxy", "text/plain", "OpenCode rejected GET /agent: Bad Gateway from the proxy"),
        (503, "", "text/plain", "OpenCode rejected GET /agent: HTTP 503"),
    ],
)  # fmt: skip
async def test_error_statuses_keep_opencodes_message(status: int, body: str, content_type: str, expected: str) -> None:
    fake = FakeOpenCode()
    fake.fail("GET /agent", status, body, content_type=content_type)
    client = client_for(fake)
    with pytest.raises(OpenCodeRequestError) as caught:
        await client.agents()
    assert str(caught.value) == expected and caught.value.status == status
    await client.aclose()


async def test_html_instead_of_json_means_a_wrong_base_url() -> None:
    fake = FakeOpenCode()
    client = client_for(fake)
    with pytest.raises(OpenCodeError, match="non-JSON content; is OPENCODE_BASE_URL right"):
        await client._request("GET", "/openapi.json")  # an unknown route: the web UI answers
    await client.aclose()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx2.ReadTimeout, "did not answer GET /global/health in time"),
        (httpx2.ConnectError, "is unreachable (ConnectError)"),
    ],
)
async def test_timeouts_and_unreachable_are_unavailable(error: type[httpx2.TransportError], expected: str) -> None:
    fake = FakeOpenCode()
    fake.fail("GET /global/health", error=error)
    fake.fail("GET /global/event", error=error)
    client = client_for(fake)
    with pytest.raises(OpenCodeUnavailable, match=re.escape(expected)):
        await client.health()
    with pytest.raises(OpenCodeUnavailable, match=r"event stream from http://opencode\.test failed"):
        async with client.stream("/global/event"):
            pass
    await client.aclose()


async def test_a_starting_opencode_fails_fast_and_credentials_never_show() -> None:
    fake = FakeOpenCode()
    client = OpenCodeClient("http://gw:pw@opencode.test", transport=fake.transport, is_ready=lambda: False)
    with pytest.raises(OpenCodeUnavailable, match="OpenCode is starting"):
        await client.health()
    assert client.display_url == "http://opencode.test" and fake.calls == []
    fake.down = True
    ready = OpenCodeClient("http://gw:pw@opencode.test", transport=fake.transport)
    with pytest.raises(OpenCodeUnavailable) as caught:
        await ready.health()
    assert "pw" not in str(caught.value)
    await client.aclose()
    await ready.aclose()


class SlowHealth(httpx2.AsyncBaseTransport):
    """OpenCode's health, answered after a pause; counts the requests that reached it."""

    def __init__(self) -> None:
        self.requests = 0
        self.answer = anyio.Event()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests += 1
        await self.answer.wait()
        return httpx2.Response(200, json={"healthy": True, "version": "1.18.33"})


async def test_health_checks_asked_while_one_is_on_its_way_share_its_request() -> None:
    slow = SlowHealth()
    client = OpenCodeClient(URL, transport=slow)
    answers: list[bool] = []

    async def check() -> None:
        answers.append((await client.health()).healthy)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(check)
        await anyio.wait_all_tasks_blocked()
        slow.answer.set()
    assert answers == [True] * 5 and slow.requests == 1
    await client.health()  # the answer is not kept: a later check asks OpenCode again
    assert slow.requests == 2
    await client.aclose()
