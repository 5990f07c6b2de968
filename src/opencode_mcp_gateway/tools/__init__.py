"""The northbound side: the MCP tools the gateway serves."""

from .health import opencode_health
from .server import build_server

__all__ = ["build_server", "opencode_health"]
