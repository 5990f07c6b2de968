"""Small building blocks with no knowledge of the gateway: a bounded cache (`LRU`), the one
back-off of everything that retries (`Backoff`), and one call in flight shared by its
concurrent callers (`SingleFlight`).

Arrows: primitives imports nothing of the gateway; every package may import it. Anything
that knows about tasks, OpenCode or settings does not belong here.
"""

from .backoff import Backoff
from .lru import LRU
from .single_flight import SingleFlight

__all__ = ["LRU", "Backoff", "SingleFlight"]
