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

__all__ = [
    "DISCONNECTED",
    "RESYNC",
    "Event",
    "EventHub",
    "OpenCodeAuthError",
    "OpenCodeClient",
    "OpenCodeError",
    "OpenCodeNotFound",
    "OpenCodeRequestError",
    "OpenCodeUnavailable",
    "Subscription",
    "redact_url",
    "session_id_of",
]
