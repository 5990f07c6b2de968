"""The southbound side: OpenCode, spoken to and run.

Spoken to (private modules behind this `__init__`): a typed async client for `opencode
serve` (`OpenCodeClient`), its payload models, its errors (one base, `OpenCodeError`) and
the shared event stream (`EventHub`).

Run (public modules, imported by name where needed so that the client stays light):
`supervisor` (spawn mode: runs and restarts `opencode serve`), `setup` (the config, offline
environment and state directories of any OpenCode the gateway runs), `llm_proxy` (the model
behind a per-OpenCode token), `split_pod` (the chart's OpenCode-only container), `pins`
(the one OpenCode release the gateway is built and tested against, and the range it
supports) and `versions` (which OpenCode answers, and whether the gateway speaks it).

Arrows: opencode may import `observability`, `primitives` and `config`; never `tasks`,
`workspaces`, `fleet`, `tools`, `edge` or the entry points.
"""

from ._client import OpenCodeClient, redact_url
from ._errors import (
    OpenCodeAuthError,
    OpenCodeError,
    OpenCodeNotAPI,
    OpenCodeNotFound,
    OpenCodeRequestError,
    OpenCodeUnavailable,
    OpenCodeUnsupported,
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
    "OpenCodeNotAPI",
    "OpenCodeNotFound",
    "OpenCodeRequestError",
    "OpenCodeUnavailable",
    "OpenCodeUnsupported",
    "Part",
    "Session",
    "Subscription",
    "ToolState",
    "redact_url",
    "session_id_of",
]
