"""Task mode: run_coding_task submits and returns at once, the rest goes through `tasks/*`.

A context flag rather than a second tool or a second copy of the arguments: the task
request runs the very tool call a blocking client makes (the SDK's argument validation,
the tool's own submit), so every input of the tool works in task mode too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_backgrounded: ContextVar[bool] = ContextVar("mcp_task_mode", default=False)


def backgrounded() -> bool:
    """Whether the current tool call was asked to become an MCP task."""
    return _backgrounded.get()


@contextmanager
def task_mode() -> Iterator[None]:
    token = _backgrounded.set(True)
    try:
        yield
    finally:
        _backgrounded.reset(token)
