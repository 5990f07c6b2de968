"""Settings of what a caller may add to a task: attachments (and the request size they need)."""

from __future__ import annotations

from pydantic import BaseModel, Field

MIB = 1024 * 1024


class ShapingSettings(BaseModel):
    max_attachment_bytes: int = Field(5 * MIB, gt=0, le=64 * MIB)  # per file, decoded
    max_attachments: int = Field(10, ge=0, le=100)  # per call

    @property
    def max_request_bytes(self) -> int:
        """The MCP request body size that admits every attachment allowed: base64 makes 4 bytes
        of 3, and the prompt, the schema and JSON around them get 4 MiB (the SDK's default)."""
        return self.max_attachments * ((self.max_attachment_bytes + 2) // 3 * 4) + 4 * MIB
