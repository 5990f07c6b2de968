"""The README is the manual: every setting is in its table, and its client advice is right."""

from __future__ import annotations

import re
from pathlib import Path

from opencode_mcp_gateway.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, flags=re.MULTILINE))
    missing = sorted({name.upper() for name in Settings.model_fields} - documented)
    assert not missing, f"settings missing from the README's configuration table: {missing}"


def test_claude_code_advice_says_its_timeout_is_a_hard_limit() -> None:
    """Claude Code's MCP_TOOL_TIMEOUT is wall-clock: progress does not extend it (2.1.330)."""
    advice = next(line for line in README.split("\n- ") if line.startswith("Claude Code: `MCP_TOOL_TIMEOUT`"))
    assert "hard wall-clock limit" in advice and "not** extend it" in advice
    assert "progress resets" not in advice.lower()
    assert "timeout_seconds` below it" in advice and "28 hours" in advice
