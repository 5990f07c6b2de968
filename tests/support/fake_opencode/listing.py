"""GET /session/{sid}/message as opencode 1.18.33 answers it, quirks included.

* `limit` gives the newest messages, oldest first; with more before them, `X-Next-Cursor`
  (and `Link`) carry a cursor, base64url of {"id", "time"} of the oldest one returned;
  `before` takes such a cursor (time first, then id) and only with `limit`.
* A user message sent with a `format` cannot be encoded: any answer that would contain it
  is `400 Expected OutputFormat…` (reading it by id too), as the real server does.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx2

Json = dict[str, Any]


def _key(message: Json) -> tuple[int, str]:
    return message["info"]["time"]["created"], message["info"]["id"]


def _cursor(message: Json) -> str:
    raw = json.dumps({"id": message["info"]["id"], "time": message["info"]["time"]["created"]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, str] | None:
    try:
        found = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return int(found["time"]), str(found["id"])
    except (ValueError, KeyError, TypeError):
        return None


def unencodable(page: list[Json]) -> httpx2.Response | None:
    for i, message in enumerate(page):
        found = message["info"].get("format")
        if found is not None:
            kind = "JsonSchema" if found.get("type") == "json_schema" else "Text"
            text = f'Expected OutputFormat{kind}, got {json.dumps(found)}\n  at [{i}]["info"]["format"]'
            body = {"name": "BadRequest", "data": {"message": text, "kind": "Body"}}
            return httpx2.Response(400, json=body)
    return None


def list_messages(messages: list[Json], params: Json) -> tuple[httpx2.Response, int]:
    """The answer, and how many messages it holds."""
    limit = int(params.get("limit") or 0)
    before = params.get("before")
    if before and not limit:
        return httpx2.Response(400, json={"_tag": "BadRequest"}), 0
    ordered = sorted(messages, key=_key)
    if before:
        bound = _decode(str(before))
        if bound is None:
            return httpx2.Response(400, json={"_tag": "BadRequest"}), 0
        ordered = [m for m in ordered if _key(m) < bound]
    page = ordered[-limit:] if limit else ordered
    refused = unencodable(page)
    if refused is not None:
        return refused, 0
    headers = {"X-Next-Cursor": _cursor(page[0])} if limit and page and len(ordered) > len(page) else {}
    return httpx2.Response(200, json=page, headers=headers), len(page)
