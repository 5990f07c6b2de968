"""One call in flight, shared: callers that ask while it runs wait for its outcome instead of
making the same call again (Go's `singleflight`). Nothing is kept after the call ends, so an
answer is never older than the call that was running when it was asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class _Flight(Generic[T]):
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.landed = False  # False when the call that led it was cancelled


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._flight: _Flight[T] | None = None

    async def __call__(self, call: Callable[[], Awaitable[T]]) -> T:
        while True:
            flight = self._flight
            if flight is None:
                return await self._lead(call)
            await flight.done.wait()
            if flight.landed:
                if flight.error is not None:
                    raise flight.error
                return flight.result  # type: ignore[return-value]  # landed without error: set
            # its leader was cancelled: this caller makes the call (or joins the next one)

    async def _lead(self, call: Callable[[], Awaitable[T]]) -> T:
        flight: _Flight[T] = _Flight()
        self._flight = flight
        try:
            flight.result = await call()
            flight.landed = True
            return flight.result
        except Exception as exc:  # shared with the followers; a cancellation is not
            flight.error, flight.landed = exc, True
            raise
        finally:
            self._flight = None
            flight.done.set()
