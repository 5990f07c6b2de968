"""The HTTP edge: everything between a socket and the MCP app.

* `server`: the uvicorn server that drains on SIGTERM (`GatewayServer`).
* `guard`: Host/Origin checks and who calls (runs the authenticator, stores the identity).
* `session_quota`: one client's share of the MCP sessions.
* `drain`: a stopping replica's readiness, and which peer replicas are ready.
* `relay`: the replica relay that sends an MCP session's requests to the replica holding it.

Arrows: edge may import `auth`, `fleet` (only the load shape, for typing), `observability`
and `config`; never `tools`, `tasks` or the entry points. The app (`app.py`) assembles it.
"""

from .drain import Drain, HostWatch, PeerReadiness
from .guard import LOCAL_NAMES, GatewayGuard, HostRules, OriginRules
from .relay import KEEP_ALIVE_SECONDS, NOT_FOUND_HEADER, SessionRouter
from .server import GatewayServer
from .session_quota import SessionQuota

__all__ = [
    "KEEP_ALIVE_SECONDS",
    "LOCAL_NAMES",
    "NOT_FOUND_HEADER",
    "Drain",
    "GatewayGuard",
    "GatewayServer",
    "HostRules",
    "HostWatch",
    "OriginRules",
    "PeerReadiness",
    "SessionQuota",
    "SessionRouter",
]
