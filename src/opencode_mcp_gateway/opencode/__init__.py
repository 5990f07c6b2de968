"""The southbound side: a typed async client for `opencode serve` and its event stream."""

from ._client import OpenCodeClient, redact_url
from ._errors import (
    OpenCodeAuthError,
    OpenCodeError,
    OpenCodeNotFound,
    OpenCodeRequestError,
    OpenCodeUnavailable,
)
from ._events import DISCONNECTED, RESYNC, Event, EventHub, Subscription, session_id_of
from ._models import Agent, Health, Message, MessageInfo, Part, Session, ToolState

__all__ = [
    "DISCONNECTED",
    "RESYNC",
    "Agent",
    "Event",
    "EventHub",
    "Health",
    "Message",
    "MessageInfo",
    "OpenCodeAuthError",
    "OpenCodeClient",
    "OpenCodeError",
    "OpenCodeNotFound",
    "OpenCodeRequestError",
    "OpenCodeUnavailable",
    "Part",
    "Session",
    "Subscription",
    "ToolState",
    "redact_url",
    "session_id_of",
]
