"""Text arguments arrive as given: a title "null" stays the four letters n-u-l-l.

The MCP SDK "pre-parses" string arguments before validating them (for clients that send a
list or an object as a JSON string): any argument whose type is not exactly `str` and
whose string value parses as JSON is replaced by the parsed value. For an optional text
argument (`str | None`) that turns the title "null" into None (the title is dropped) and
"[1]" into a list (a validation error); "123" and "true" survive only because the SDK
skips numbers. Here each tool's argument metadata is swapped for one that pre-parses only
arguments that cannot take text at all (lists, objects such as answers, attachments and
output_schema), so a string sent for a text argument always reaches OpenCode unchanged.
"""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata


def takes_text(annotation: Any) -> bool:
    """Whether a string is a valid value of this type as it is (str, str | None, a Literal of strings)."""
    if annotation is str:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return any(isinstance(v, str) for v in get_args(annotation))
    if origin is Union or origin is types.UnionType:
        return any(takes_text(a) for a in get_args(annotation))
    return False


class TextAsGiven(FuncMetadata):
    def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
        parsed = super().pre_parse_json(data)
        text: set[str] = set()
        for name, info in self.arg_model.model_fields.items():
            if takes_text(info.annotation):
                text |= {name, info.alias} if info.alias else {name}
        return {key: (data[key] if key in text else value) for key, value in parsed.items()}


def keep_text_as_given(mcp: MCPServer) -> None:
    """Every tool registered so far pre-parses only its non-text arguments."""
    for tool in mcp._tool_manager.list_tools():  # the SDK has no public hook for this
        tool.fn_metadata = TextAsGiven(**dict(tool.fn_metadata))
