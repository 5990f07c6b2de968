"""The uvicorn server the gateway runs, with its stop-signal behaviour."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Generator
from types import FrameType

import uvicorn

log = logging.getLogger(__name__)


class GatewayServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful shutdown, so the process would report
    death by signal; a clean stop exits 0, as supervisors and kubelets expect.

    `on_exit` runs the moment a stop signal arrives: requests cancelled while uvicorn
    drains (a client's session DELETE on protocol 2025-11-25 cancels its calls) must
    already see that the gateway stops, not a client giving up, and leave the run alone.

    With `drain_seconds` (SHUTDOWN_DRAIN_SECONDS) the first stop signal only starts a drain
    (`on_drain`: /readyz turns 503, drain.py) and the gateway keeps serving that long before
    it stops as above; a second signal stops it at once."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_exit: Callable[[], None],
        *,
        drain_seconds: float = 0.0,
        on_drain: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._drain_seconds = drain_seconds
        self._on_drain = on_drain
        self._draining: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_seconds > 0 and self._draining is None:
            self._on_drain()
            log.warning(
                "stop signal: out of placement, serving %gs more before stopping (SHUTDOWN_DRAIN_SECONDS)",
                self._drain_seconds,
            )
            self._draining = threading.Timer(self._drain_seconds, self._stop, (sig,))
            self._draining.daemon = True
            self._draining.start()
            return
        if self._draining is not None:
            self._draining.cancel()
        self._stop(sig)

    def _stop(self, sig: int) -> None:
        self._on_exit()
        super().handle_exit(sig, None)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()
