"""The LLM proxy of spawn mode against the scripted provider: only its per-start token
opens it, the real key is added upstream, and streamed answers pass through as they come."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import anyio
import httpx2
import pytest

from opencode_mcp_gateway.opencode.llm_proxy import LLMProxy
from tests.support.client import script
from tests.support.fake_llm import FakeLLM

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

REAL_KEY = "sk-upstream-real-key"
TOOLS = [{"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}]


def chat(text: str, **step: object) -> dict[str, object]:
    prompt = script({"text": text, **step})
    return {"model": "m", "stream": True, "tools": TOOLS, "messages": [{"role": "user", "content": prompt}]}


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[LLMProxy, FakeLLM]]:
    llm = FakeLLM(require_key=REAL_KEY)
    url = llm.start()
    served = LLMProxy(url, REAL_KEY)
    async with anyio.create_task_group() as tg:
        tg.start_soon(served.serve)
        with anyio.fail_after(10):
            async with httpx2.AsyncClient(timeout=1) as http:
                while True:
                    try:
                        await http.get(served.base_url + "/models")  # the proxy serves in this loop
                        break
                    except httpx2.HTTPError:
                        await anyio.sleep(0.05)
        yield served, llm
        tg.cancel_scope.cancel()
    llm.stop()


async def test_only_the_per_start_token_opens_the_proxy(proxy: tuple[LLMProxy, FakeLLM]) -> None:
    served, llm = proxy
    assert served.token != REAL_KEY and served.base_url.startswith("http://127.0.0.1:")
    async with httpx2.AsyncClient(timeout=10) as http:
        for auth in ({}, {"authorization": f"Bearer {REAL_KEY}"}, {"authorization": "Bearer wrong"}):
            refused = await http.post(served.base_url + "/chat/completions", json=chat("x"), headers=auth)
            assert refused.status_code == 401 and REAL_KEY not in refused.text
        assert not llm.requests  # nothing reached the provider
        ok = await http.get(served.base_url + "/models", headers={"authorization": f"Bearer {served.token}"})
    assert ok.status_code == 200 and ok.json()["data"][0]["id"] == "fake-model"  # the provider required REAL_KEY


async def test_streamed_answers_pass_through_as_they_come(proxy: tuple[LLMProxy, FakeLLM]) -> None:
    served, llm = proxy
    arrivals: list[tuple[float, str]] = []
    headers = {"authorization": f"Bearer {served.token}"}
    async with (
        httpx2.AsyncClient(timeout=30) as http,
        http.stream(
            "POST", served.base_url + "/chat/completions", json=chat("abcdef", chunks=3, delay=1), headers=headers
        ) as response,
    ):
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                arrivals.append((time.time(), line))
    texts = "".join(
        (json.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or "" for _, line in arrivals
    )
    assert texts == "abcdef"
    finished = llm.requests[-1]["last_byte"]
    # The first pieces arrived seconds before the provider sent its last byte: no buffering.
    assert arrivals[1][0] < finished - 2, (arrivals[1][0], finished)
