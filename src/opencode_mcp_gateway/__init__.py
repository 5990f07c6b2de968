"""opencode-mcp-gateway: hand coding tasks to OpenCode from any MCP client."""

from importlib.metadata import version

__version__ = version("opencode-mcp-gateway")  # pyproject.toml is the one place for it
