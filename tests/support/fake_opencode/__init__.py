"""A fake `opencode serve` 1.18.33 in memory, for the in-memory test tier.

    fake = FakeOpenCode()
    fake.queue(Tool("edit", {"filePath": "calc.py"}, files={"calc.py": "+x\n"}), Reply("Done."))
    client = OpenCodeClient("http://opencode.test", transport=fake.transport)

It keeps sessions, messages with parts, statuses, permission and question requests and
per-turn diffs, plays a queued script when a prompt arrives, and announces every change
on `/global/event`. `fake.calls` records every request (as its route template), so a
test can count the OpenCode calls one tool makes.
"""

from .server import AGENTS, EVENT_ROUTE, VERSION, FakeOpenCode
from .steps import Ask, Crash, Fail, Hold, Question, Reply, Retry, SessionError, Step, Structured, Tool

__all__ = [
    "AGENTS",
    "EVENT_ROUTE",
    "VERSION",
    "Ask",
    "Crash",
    "Fail",
    "FakeOpenCode",
    "Hold",
    "Question",
    "Reply",
    "Retry",
    "SessionError",
    "Step",
    "Structured",
    "Tool",
]
