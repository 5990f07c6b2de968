from __future__ import annotations

from opencode_mcp_gateway.primitives.lru import LRU


def test_it_forgets_the_least_recently_stored_entry_past_its_size() -> None:
    cache: LRU[str, int] = LRU(2)
    cache["a"], cache["b"] = 1, 2
    cache["a"] = 3  # stored again: now the newest
    cache["c"] = 4
    assert dict(cache) == {"a": 3, "c": 4}


def test_reading_does_not_change_what_is_forgotten() -> None:
    cache: LRU[str, int] = LRU(2)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1
    cache["c"] = 3
    assert list(cache) == ["b", "c"]
