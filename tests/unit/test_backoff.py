from __future__ import annotations

import pytest

from opencode_mcp_gateway.primitives.backoff import Backoff

pytestmark = pytest.mark.anyio


async def test_each_wait_doubles_up_to_the_ceiling_and_reset_starts_over() -> None:
    backoff = Backoff(0.001, 0.004)
    assert [await backoff.sleep() for _ in range(4)] == [0.001, 0.002, 0.004, 0.004]
    backoff.reset()
    assert await backoff.sleep() == 0.001
