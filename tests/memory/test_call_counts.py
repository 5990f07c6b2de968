"""The OpenCode calls each tool makes stay as docs/benchmarks.md records them: a change that
makes a tool chattier fails here, and one that saves calls updates the table."""

from __future__ import annotations

import pytest

from tests.support.call_counts import DOC, HEADING, count_all, documented

pytestmark = pytest.mark.anyio


async def test_calls_per_tool_match_the_documented_table() -> None:
    measured = {name: sum(calls.values()) for name, calls in (await count_all()).items()}
    recorded = documented(DOC.read_text())
    hint = "run `python -m tests.support.call_counts --write` and commit docs/benchmarks.md"
    assert recorded, f"docs/benchmarks.md has no '{HEADING}' table: {hint}"
    assert measured == recorded, f"OpenCode calls per tool changed ({hint}): measured {measured}"
