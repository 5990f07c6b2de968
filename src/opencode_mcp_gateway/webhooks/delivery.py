"""Sending webhooks: at least once, each on its own, never in anyone's way.

Every (event, destination) is one delivery, run as its own task: a 2xx ends it; a non-2xx
answer (a redirect too: redirects are never followed), a timeout (each attempt is bounded
by WEBHOOK_ATTEMPT_TIMEOUT_SECONDS) or a refused connection is retried after a growing
back-off (WEBHOOK_BACKOFF_SECONDS, doubled each time up to MAX_DELAY) until
WEBHOOK_RETRY_SECONDS have passed since the first attempt; then it is given up. Every
attempt is signed afresh (the timestamp is the attempt's) under the same `webhook-id`.

Bounded: at most `max_pending` deliveries are held in memory; past that a new one is
dropped (counted and logged) and, having no record, is picked up again by the next sweep.
A slow receiver holds only its own delivery: no tool call, event stream or other delivery
waits for it. The response's body is never read, and each attempt is logged with the
event id, never the URL (it may hold a token), the body or the secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import anyio
import httpx2

from .. import __version__
from ..observability import metrics
from ..primitives import LRU
from .events import Event
from .signing import Signer

log = logging.getLogger(__name__)

MAX_DELAY = 900.0  # the longest wait between two attempts
Result = Literal["delivered", "failed"]


@dataclass(frozen=True)
class Job:
    event: Event
    destination: str  # "caller" (the task's notify_url) or "deployment" (WEBHOOK_URL)
    url: str
    session_id: str
    destinations: tuple[str, ...] = ()  # every destination of this event (its end is settled once all are)

    @property
    def key(self) -> tuple[str, str]:
        return self.event.id, self.destination


Done = Callable[[Job, Result], Awaitable[None]]


def retry_delays(first: float, ceiling: float = MAX_DELAY) -> Iterator[float]:
    """The waits between attempts: `first`, then doubled each time, never above `ceiling`."""
    delay = first
    while True:
        yield min(delay, ceiling)
        delay = min(delay * 2, ceiling)


class Deliverer:
    def __init__(
        self,
        signer: Signer,
        *,
        retry_seconds: float,
        attempt_timeout: float,
        backoff_seconds: float,
        max_pending: int = 1000,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._signer = signer
        self.retry_seconds = retry_seconds
        self.attempt_timeout = attempt_timeout
        self.backoff_seconds = backoff_seconds
        self.max_pending = max_pending
        # No redirects, no proxy or .netrc from the environment (a credential must not ride along).
        self._http = httpx2.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx2.Timeout(attempt_timeout),
            headers={"user-agent": f"opencode-mcp-gateway/{__version__}"},
            transport=transport,
        )
        self._pending: dict[tuple[str, str], Job] = {}
        self._finished: LRU[tuple[str, str], None] = LRU(10_000)  # settled here, whatever the record says
        self._waiting = 0  # deliveries waiting for their next attempt
        self._send, self._receive = anyio.create_memory_object_stream[tuple[Job, Done]](max_buffer_size=max_pending)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def enqueue(self, job: Job, done: Done) -> bool:
        """Starts delivering `job` unless it is under way or settled already; False: dropped."""
        if job.key in self._pending or job.key in self._finished:
            return True
        if len(self._pending) >= self.max_pending:
            metrics.WEBHOOK_DELIVERIES.labels(job.event.kind, "dropped").inc()
            log.warning("webhook %s dropped: %d deliveries pending already", job.event.id, len(self._pending))
            return False
        self._pending[job.key] = job
        self._send.send_nowait((job, done))
        return True

    async def run(self) -> None:
        async with anyio.create_task_group() as tg, self._receive:
            async for job, done in self._receive:
                tg.start_soon(self._deliver, job, done)

    async def aclose(self) -> None:
        self._send.close()
        self._receive.close()
        await self._http.aclose()

    async def _deliver(self, job: Job, done: Done) -> None:
        deadline = time.monotonic() + self.retry_seconds
        delays = retry_delays(self.backoff_seconds)
        attempt = 0
        result: Result = "failed"
        try:
            while True:
                attempt += 1
                outcome = await self._attempt(job)
                if outcome is None:
                    result = "delivered"
                    _log(job, attempt, "delivered")
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    _log(
                        job,
                        attempt,
                        f"{outcome}; given up after WEBHOOK_RETRY_SECONDS={self.retry_seconds:g}",
                        logging.WARNING,
                    )
                    break
                delay = min(next(delays), left)
                _log(job, attempt, f"{outcome}; next attempt in {delay:.1f}s")
                await self._wait(delay)
            metrics.WEBHOOK_DELIVERIES.labels(job.event.kind, result).inc()
            self._finished[job.key] = None
            with anyio.CancelScope(shield=True):
                await done(job, result)
        except Exception:  # one delivery's trouble never ends the others
            log.exception("webhook %s: delivery failed unexpectedly", job.event.id)
        finally:
            self._pending.pop(job.key, None)

    async def _wait(self, delay: float) -> None:
        self._waiting += 1
        metrics.WEBHOOK_RETRY_BACKLOG.set(self._waiting)
        try:
            await anyio.sleep(delay)
        finally:
            self._waiting -= 1
            metrics.WEBHOOK_RETRY_BACKLOG.set(self._waiting)

    async def _attempt(self, job: Job) -> str | None:
        """One POST; None when the receiver took it (2xx), else why not."""
        headers = self._signer.headers(job.event.id, job.event.body)
        try:
            with anyio.fail_after(self.attempt_timeout):  # the whole attempt, however slowly it drips
                async with self._http.stream("POST", job.url, content=job.event.body, headers=headers) as response:
                    status = response.status_code
        except TimeoutError:
            return f"no answer within {self.attempt_timeout:g}s"
        except httpx2.HTTPError as exc:
            return type(exc).__name__
        if 200 <= status < 300:
            return None
        return f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")


def _log(job: Job, attempt: int, what: str, level: int = logging.INFO) -> None:
    """One line per attempt: the event id, never the URL (it may hold a token), body or secret."""
    log.log(level, "webhook %s %s attempt %d to %s: %s", job.event.id, job.event.kind, attempt, job.destination, what)
