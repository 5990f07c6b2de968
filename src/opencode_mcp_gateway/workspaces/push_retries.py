"""When to push a branch again after a push failed.

A push fails for reasons that pass (the git server restarting, a network blip) and for
reasons that do not (a revoked token). The work is committed on the branch either way, so
the gateway tries again on a schedule that spaces out and then stops: a passing failure
heals within minutes without anybody asking, and a lasting one costs a handful of tries.
A new commit on the branch (a follow-up turn) pushes at once and starts the schedule again.

Kept in the process that tried (a replica that never tried pushes on its first chance).
"""

from __future__ import annotations

from ..primitives import LRU

# Seconds from each failed try to the next: about 19 minutes in all, then no more.
SCHEDULE = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class PushRetries:
    def __init__(self, schedule: tuple[float, ...] = SCHEDULE) -> None:
        self.schedule = schedule
        self._failures: LRU[str, tuple[int, float]] = LRU(1000)  # session -> (failed tries, next due)

    def failed(self, session_id: str, now: float) -> float | None:
        """Records a failed try; returns when the next one is due (None: no more)."""
        tries = self._failures[session_id][0] + 1 if session_id in self._failures else 1
        if tries > len(self.schedule):
            self._failures[session_id] = (tries, float("inf"))
            return None
        due = now + self.schedule[tries - 1]
        self._failures[session_id] = (tries, due)
        return due

    def succeeded(self, session_id: str) -> None:
        self._failures.pop(session_id, None)

    def waiting(self, session_id: str) -> bool:
        """Whether the session's last push failed and another try is scheduled."""
        found = self._failures.get(session_id)
        return found is not None and found[1] != float("inf")

    def is_due(self, session_id: str, now: float) -> bool:
        """Whether a branch whose last push failed may be pushed again now."""
        found = self._failures.get(session_id)
        return found is None or now >= found[1]

    def due(self, now: float) -> list[str]:
        """The sessions whose next try is due."""
        return [sid for sid, (_, due) in self._failures.items() if now >= due]

    def next_due(self) -> float | None:
        dues = [due for _, due in self._failures.values() if due != float("inf")]
        return min(dues) if dues else None
