"""The walk past messages OpenCode cannot return, on OpenCode's listing rules (the fake's)."""

from __future__ import annotations

from typing import Any

import pytest

from opencode_mcp_gateway.opencode import OpenCodeRequestError
from opencode_mcp_gateway.opencode._unreadable import MessageWalk
from opencode_mcp_gateway.tasks.ids import new_message_id
from tests.support.fake_opencode.listing import list_messages

pytestmark = pytest.mark.anyio
Json = dict[str, Any]
FORMAT = {"type": "json_schema", "schema": {"type": "object"}}


def user(at: int, *, formatted: bool = False) -> Json:
    info: Json = {"id": new_message_id(), "role": "user", "time": {"created": at}}
    if formatted:
        info["format"] = FORMAT
    return {"info": info, "parts": []}


def reply(to: Json, at: int) -> Json:
    info = {"id": new_message_id(), "role": "assistant", "parentID": to["info"]["id"], "time": {"created": at}}
    return {"info": {**info, "agent": "build", "providerID": "p", "modelID": "m"}, "parts": []}


def pager(messages: list[Json], calls: list[int]) -> Any:
    async def page(size: int, before: str | None) -> tuple[list[Json], str | None]:
        calls.append(size)
        response, _ = list_messages(messages, {"limit": size, **({"before": before} if before else {})})
        if response.status_code != 200:
            raise OpenCodeRequestError(f"OpenCode rejected GET: {response.json()['data']['message']}", 400)
        return response.json(), response.headers.get("x-next-cursor")

    return page


def shown(found: list[Json]) -> list[str]:
    return [m["info"]["id"] + ("*" if m["info"].get("unreadable") else "") for m in found]


async def test_every_message_is_read_and_the_unreadable_ones_stood_in_for() -> None:
    u0 = user(1000)
    u1 = user(2000, formatted=True)  # its reply names it
    u2 = user(3000, formatted=True)  # failed before any reply: only the record names it
    u3 = user(3000, formatted=True)  # queued in the same millisecond
    messages = [u0, reply(u0, 1001), u1, reply(u1, 2000), reply(u1, 2500), u2, u3, reply(u3, 3001)]
    calls: list[int] = []
    walk = MessageWalk()
    ids = [m["info"]["id"] for m in (u1, u2, u3)]
    found = await walk.walk("ses_x", pager(messages, calls), None, ids)
    assert shown(found) == [m["info"]["id"] + ("*" if "format" in m["info"] else "") for m in messages]
    assert [m["info"]["time"]["created"] for m in found] == [m["info"]["time"]["created"] for m in messages]
    assert found[2]["info"]["agent"] == "build" and found[2]["info"]["model"] == {"providerID": "p", "modelID": "m"}
    again: list[int] = []
    assert shown(await walk.walk("ses_x", pager(messages, again), None, ids)) == shown(found)
    assert len(again) < len(calls)  # the creation times are remembered


async def test_the_walk_stops_at_the_turn_asked_for_and_where_nothing_names_the_message() -> None:
    u0, u1 = user(1000), user(2000, formatted=True)
    messages = [u0, reply(u0, 1001), u1, reply(u1, 2001)]
    calls: list[int] = []
    found = await MessageWalk().walk("ses_x", pager(messages, calls), 50, [u1["info"]["id"]], until=u1["info"]["id"])
    assert shown(found) == [u1["info"]["id"] + "*", messages[3]["info"]["id"]]
    lone = [user(5000, formatted=True)]  # newest, no reply, not recorded: nothing to go on
    assert await MessageWalk().walk("ses_x", pager(lone, []), None, []) == []


async def test_two_unreadable_messages_in_a_row_are_both_passed() -> None:
    u0, u1, u2 = user(1000), user(2000, formatted=True), user(2500, formatted=True)  # u1 got no reply
    messages = [u0, reply(u0, 1001), u1, u2, reply(u2, 2600)]
    ids = [u1["info"]["id"], u2["info"]["id"]]
    found = await MessageWalk().walk("ses_x", pager(messages, []), None, ids)
    assert shown(found) == [m["info"]["id"] + ("*" if "format" in m["info"] else "") for m in messages]
    assert found[2]["info"]["time"]["created"] == 2000  # u2's own time is not needed to pass both
