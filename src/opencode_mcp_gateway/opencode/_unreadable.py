"""Listing a session's messages when OpenCode cannot list them all (opencode 1.18.33).

A user message sent with an output `format` (output_schema) can break OpenCode's encoding
of it (always seen for a session's first one): listing the session's messages, or reading
that message, answers 400 "Expected OutputFormat…", while every other message still reads
fine, a page at a time. So the
listing walks back from the newest message in pages; a page that fails is narrowed down to
the one message OpenCode cannot return, which a stand-in replaces (its id, role `user`,
creation time, the agent and model its replies name, and `unreadable: true`), and the walk
goes on past it with a cursor made for it.

OpenCode's page cursor is the (creation time, id) of the oldest message returned so far.
The unreadable message's id is known (its replies name it as their parent; else the
caller names the ids it sent with a format), its creation time is not: it is the largest
t at which a cursor (t, id) still leaves the message out, found by asking (an answer
without 400 leaves it out), starting from the time in the id itself. A dozen small
requests, once per message: the time never changes, so it is remembered.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from ..primitives import LRU
from ._errors import OpenCodeError, OpenCodeRequestError

JSON = dict[str, Any]
# (how many, before which cursor) → the page, oldest first, and the cursor past it
Pager = Callable[[int, str | None], Awaitable[tuple[list[JSON], str | None]]]

PAGE = 50
MAX_PROBES = 64  # asking for one creation time; ~2 per doubling of the distance from the id's time


def cannot_list(exc: OpenCodeError) -> bool:
    """OpenCode's own encoding of a message sent with a `format` failed."""
    return isinstance(exc, OpenCodeRequestError) and exc.status == 400 and "Expected OutputFormat" in str(exc)


def cursor(created: int, message_id: str) -> str:
    raw = json.dumps({"id": message_id, "time": created}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def id_time(message_id: str, now_ms: int) -> int:
    """The creation time an OpenCode-style id carries (milliseconds modulo 2^36, so the one
    nearest `now_ms`); `now_ms` for an id without one."""
    try:
        stamp = int(message_id[4:16], 16) >> 12
    except ValueError:
        return now_ms
    period = 1 << 36
    base = now_ms - (now_ms % period) + stamp
    return min((base - period, base, base + period), key=lambda t: abs(t - now_ms))


class MessageWalk:
    def __init__(self, size: int = 10_000) -> None:
        self._created: LRU[str, int] = LRU(size)  # unreadable message id → its creation time

    async def walk(
        self,
        session_id: str,
        page: Pager,
        limit: int | None,
        sent_with_format: Collection[str],
        until: str | None = None,
    ) -> list[JSON]:
        """The newest `limit` messages (all with None), oldest first, unreadable ones stood in
        for; it stops early once message `until` is among them. Pages start at one message and
        double while they read (the turn a caller asks about is usually the newest), and halve
        down to the unreadable message when they fail."""
        newest_first: list[JSON] = []
        before: str | None = None
        size = 1
        while (limit is None or len(newest_first) < limit) and not any(m["info"]["id"] == until for m in newest_first):
            want = size if limit is None else min(size, limit - len(newest_first))
            try:
                items, before_next = await page(want, before)
            except OpenCodeError as exc:
                if not cannot_list(exc):
                    raise
                if want > 1:
                    size = max(1, want // 2)  # narrow down to the one message OpenCode cannot return
                    continue
                stand_ins = await self._stand_ins(session_id, page, newest_first, sent_with_format)
                if not stand_ins:  # no way past it: what was read is all there is
                    break
                newest_first.extend(stand_ins)
                last = stand_ins[-1]["info"]
                before, size = cursor(last["time"]["created"], last["id"]), 1
                continue
            newest_first.extend(reversed(items))
            if before_next is None or not items:
                break
            before, size = before_next, min(PAGE, size * 2)  # past the narrowing: longer pages again
        return list(reversed(newest_first))

    async def _stand_ins(
        self, session_id: str, page: Pager, newer: list[JSON], sent_with_format: Collection[str]
    ) -> list[JSON]:
        """Stand-ins for the unreadable message just older than `newer`, newest first: one, or
        two when the next older message sent with a format lies right below it (a turn that got
        no reply): then the search for the first meets the second, and both stand at its time."""
        first = _which(newer, sent_with_format)
        ceiling = newer[-1]["info"]["time"]["created"] if newer else None
        created = await self._created_of(page, first, ceiling) if first else None
        if first is None or created is None:
            return []
        found = [_stand_in(session_id, first, created, newer)]
        seen = {m["info"]["id"] for m in newer}
        below = sorted((i for i in sent_with_format if i < first and i not in seen), reverse=True)
        if below:
            second = await self._created_of(page, below[0], ceiling)
            if second is not None and second >= created:
                self._created[first] = second
                found[0]["info"]["time"]["created"] = second
                found.append(_stand_in(session_id, below[0], second, newer))
        return found

    async def _created_of(self, page: Pager, message_id: str, ceiling: int | None) -> int | None:
        created = self._created.get(message_id)
        if created is None:
            created = await self._find_created(page, message_id, ceiling)
            if created is not None:
                self._created[message_id] = created
        return created

    async def _find_created(self, page: Pager, message_id: str, ceiling: int | None) -> int | None:
        """The message's creation time. `ceiling`: that of the message just newer (read
        before it), so a cursor up to it has nothing between it and the unreadable one:
        there a page of one fails exactly when the cursor's time is past the message's."""

        async def leaves_out(t: int) -> bool:
            try:
                await page(1, cursor(t, message_id))
            except OpenCodeError as exc:
                if cannot_list(exc):
                    return False
                raise
            return True

        guess = id_time(message_id, int(time.time() * 1000))
        if ceiling is not None:
            guess = min(guess, ceiling)
        good, bad = (guess, None) if await leaves_out(guess) else (None, guess)
        probes, step = 1, 1
        while (good is None or bad is None) and probes < MAX_PROBES:  # widen until both sides are known
            if good is not None:
                if ceiling is not None and good >= ceiling:
                    return good  # created in the same millisecond as the message after it
                probe = good + step if ceiling is None else min(good + step, ceiling)
            else:
                probe = bad - step  # type: ignore[operator]
            if await leaves_out(probe):
                good = probe
            else:
                bad = probe
            step *= 2
            probes += 1
        while good is not None and bad is not None and bad - good > 1 and probes < MAX_PROBES:
            middle = (good + bad) // 2
            if await leaves_out(middle):
                good = middle
            else:
                bad = middle
            probes += 1
        return good if good is not None and bad == good + 1 else None


def _stand_in(session_id: str, message_id: str, created: int, newer: list[JSON]) -> JSON:
    info: JSON = {
        "id": message_id,
        "sessionID": session_id,
        "role": "user",
        "time": {"created": created},
        "unreadable": True,
    }
    reply = next((m["info"] for m in reversed(newer) if m["info"].get("parentID") == message_id), None)
    if reply is not None:  # its replies name the agent and model the turn ran with
        info["agent"] = reply.get("agent")
        info["model"] = {"providerID": reply.get("providerID"), "modelID": reply.get("modelID")}
    return {"info": info, "parts": []}


def _which(newer: list[JSON], sent_with_format: Collection[str]) -> str | None:
    """The id of the message just older than `newer` (newest first), which cannot be read."""
    seen = {m["info"]["id"] for m in newer}
    oldest = newer[-1]["info"] if newer else None
    parent = oldest.get("parentID") if oldest and oldest.get("role") == "assistant" else None
    candidates = sorted((i for i in sent_with_format if i not in seen), reverse=True)
    if oldest is not None:
        candidates = [i for i in candidates if i < oldest["id"]]
    if parent and parent not in seen and (parent in candidates or not sent_with_format):
        return str(parent)
    return candidates[0] if candidates else (str(parent) if parent and parent not in seen else None)
