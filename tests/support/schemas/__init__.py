"""The published JSON schemas that MCP Tasks results are checked against, as fetched:

* `tasks-extension.schema.json`: modelcontextprotocol/ext-tasks `schema/draft/schema.json`
  at e434597 (the 2026-07-28 extension, SEP-2663);
* `mcp-2025-11-25.schema.json`: modelcontextprotocol/modelcontextprotocol
  `schema/2025-11-25/schema.json` at b0f60ba5 (experimental tasks, SEP-1686).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

HERE = Path(__file__).parent
FILES = {"2026-07-28": "tasks-extension.schema.json", "2025-11-25": "mcp-2025-11-25.schema.json"}


@cache
def _root(era: str) -> dict[str, Any]:
    root: dict[str, Any] = json.loads((HERE / FILES[era]).read_text())
    return root


def check(era: str, definition: str, instance: Any) -> None:
    """Fails (AssertionError, with every violation) unless `instance` is a valid `definition`."""
    root = _root(era)
    schema = {"$schema": root["$schema"], "$defs": root["$defs"], "$ref": f"#/$defs/{definition}"}
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft202012Validator(schema).iter_errors(instance)
    ]
    assert not errors, f"not a valid {definition} ({era}): {errors}"
