"""Small building blocks with no knowledge of the gateway: a bounded cache (`LRU`) and the one
back-off of everything that retries (`Backoff`).

Arrows: primitives imports nothing of the gateway; every package may import it. Anything
that knows about tasks, OpenCode or settings does not belong here.
"""

from .backoff import Backoff
from .lru import LRU

__all__ = ["LRU", "Backoff"]
