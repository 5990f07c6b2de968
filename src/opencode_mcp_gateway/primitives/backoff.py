"""One back-off for everything that retries (the event stream, a restarting OpenCode):
wait, double the wait up to a ceiling, start over once things work again."""

from __future__ import annotations

import anyio


class Backoff:
    def __init__(self, first: float, ceiling: float) -> None:
        self.first = first
        self.ceiling = ceiling
        self.delay = first

    def reset(self) -> None:
        self.delay = self.first

    async def sleep(self) -> float:
        """Wait the current delay (returned), and make the next one longer."""
        waited = self.delay
        await anyio.sleep(waited)
        self.delay = min(self.delay * 2, self.ceiling)
        return waited
