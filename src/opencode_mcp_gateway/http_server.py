"""The uvicorn server the gateway runs, with its stop-signal behaviour."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from types import FrameType

import uvicorn


class GatewayServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful shutdown, so the process would report
    death by signal; a clean stop exits 0, as supervisors and kubelets expect.

    `on_exit` runs the moment a stop signal arrives: requests cancelled while uvicorn
    drains (a client's session DELETE on protocol 2025-11-25 cancels its calls) must
    already see that the gateway stops, not a client giving up, and leave the run alone."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()
