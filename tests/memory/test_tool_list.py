"""`tools/list` is built by the SDK once per protocol version, then answered from memory."""

from __future__ import annotations

from typing import Any

import pytest

from opencode_mcp_gateway.tools.running import SUBMITTED
from tests.support.in_memory import LEGACY, MODERN, in_memory_gateway

pytestmark = pytest.mark.anyio


async def test_the_tool_list_is_built_once_per_protocol_version_and_stays_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with in_memory_gateway() as gw:
        built: list[int] = []
        real = gw.server.list_tools

        async def counted() -> Any:
            built.append(1)
            return await real()

        monkeypatch.setattr(gw.server, "list_tools", counted)
        lists: dict[str, Any] = {}
        for mode in (LEGACY, MODERN):
            for _ in range(3):  # three sessions (or, in 2026, three requests) of each era
                async with gw.mcp(mode) as c:
                    tools = (await c.list_tools()).tools
                    assert lists.setdefault(mode, tools) == tools
                    done = await c.call_tool("health_check", {})  # checked against the listed schema
                    assert not done.is_error
        assert [t.name for t in lists[LEGACY]] == [t.name for t in lists[MODERN]]
        assert len(lists[LEGACY]) == 10 and all(t.output_schema for t in lists[LEGACY])
    assert len(built) == 2, f"the SDK built the tool list {len(built)} times for 6 lists in 2 eras"


async def test_both_run_tools_hand_every_task_argument_on() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        tools = {t.name: set(t.input_schema["properties"]) for t in (await c.list_tools()).tools}
    assert tools["run_coding_task"] - {"timeout_seconds"} == set(SUBMITTED) == tools["run_coding_task_async"]
