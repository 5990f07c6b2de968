"""The schedule of pushes tried again after a failed one (workspaces/push_retries.py)."""

from __future__ import annotations

from opencode_mcp_gateway.workspaces.push_retries import PushRetries


def test_failed_pushes_are_tried_again_ever_later_then_no_more() -> None:
    retries = PushRetries((5.0, 15.0))
    assert retries.is_due("s", 0) and not retries.waiting("s")  # never failed: push when asked
    assert retries.failed("s", 100) == 105
    assert retries.waiting("s") and not retries.is_due("s", 104) and retries.is_due("s", 105)
    assert retries.due(104) == [] and retries.due(105) == ["s"] and retries.next_due() == 105
    assert retries.failed("s", 105) == 120
    assert retries.failed("s", 120) is None  # the schedule is spent
    assert not retries.waiting("s") and not retries.is_due("s", 10**9) and retries.due(10**9) == []
    assert retries.next_due() is None


def test_a_success_or_a_new_commit_starts_afresh() -> None:
    retries = PushRetries((5.0, 15.0))
    retries.failed("s", 0)
    retries.failed("t", 0)
    retries.succeeded("s")
    assert retries.is_due("s", 0) and not retries.waiting("s") and retries.failed("s", 1) == 6
    assert retries.next_due() == 5 and sorted(retries.due(6)) == ["s", "t"]
