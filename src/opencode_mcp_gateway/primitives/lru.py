"""One bounded cache: a dict that forgets its least recently stored entries past a size.

The task layer remembers many small things per session (its record, its errors, whether it
has a workspace, which turns were counted); each must stay bounded however many sessions
a long-running gateway sees.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(OrderedDict[K, V]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
