"""opencode-mcp-gateway: hand coding tasks to OpenCode from any MCP client."""

__version__ = "0.1.0"
