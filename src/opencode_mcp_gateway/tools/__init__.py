"""The northbound side: the MCP tools the gateway serves."""

from .server import build_server

__all__ = ["build_server"]
