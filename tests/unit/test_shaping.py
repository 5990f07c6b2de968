"""The pure rules of shaped tasks: versions, schemas, tool switches, text kept as given."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from mcp.server.mcpserver import MCPServer
from pydantic import Field

from opencode_mcp_gateway.opencode import Health, OpenCodeUnsupported
from opencode_mcp_gateway.opencode._unreadable import cursor, id_time
from opencode_mcp_gateway.opencode.pins import OPENCODE_SUPPORTED, OPENCODE_VERSION
from opencode_mcp_gateway.opencode.versions import check, is_supported
from opencode_mcp_gateway.tasks import shaping, structured
from opencode_mcp_gateway.tasks.ids import new_message_id
from opencode_mcp_gateway.tools.as_given import keep_text_as_given, takes_text


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        (OPENCODE_VERSION, True),
        ("1.18.40", True),
        ("v1.18.33", True),
        ("1.18.32", False),
        ("1.19.0", False),
        ("2.0.0", False),
        ("0.9", False),
        ("nightly", False),
    ],
)
def test_the_supported_range_is_the_tested_minor(version: str, ok: bool) -> None:
    assert is_supported(version) is ok


def test_an_unsupported_version_is_named_with_the_range() -> None:
    with pytest.raises(OpenCodeUnsupported) as found:
        check(Health(healthy=True, version="2.0.0"), "http://oc:4096")
    assert found.value.version == "2.0.0"
    assert all(w in str(found.value) for w in ("OpenCode 2.0.0 at http://oc:4096", *OPENCODE_SUPPORTED))
    with pytest.raises(OpenCodeUnsupported, match="no supported OpenCode answers at http://oc:4096"):
        check(Health(healthy=False), "http://oc:4096")
    assert check(Health(healthy=True, version=OPENCODE_VERSION), "u").healthy


def test_schemas_are_checked_and_answers_validated() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert structured.check_schema(schema) is schema
    bad: object
    for bad in ([], {"type": "object", "required": "n"}, {"type": "string"}, {"type": "object", "x": "y" * 20_000}):
        with pytest.raises(structured.InvalidSchema):
            structured.check_schema(bad)
    with pytest.raises(structured.InvalidSchema, match="only references inside the schema"):
        structured.check_schema({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}})
    local = {"type": "object", "$defs": {"n": {"type": "integer"}}, "properties": {"n": {"$ref": "#/$defs/n"}}}
    assert structured.failure(structured.check_schema(local), {"n": "x"}) is not None
    assert structured.failure(schema, {"n": 1}) is None
    assert "at n: 'one' is not of type 'integer'" in (structured.failure(schema, {"n": "one"}) or "")
    assert "without the structured answer" in (structured.failure(schema, None) or "")


def test_a_read_only_turn_switches_off_every_tool_that_is_not_a_reading_one() -> None:
    switches = shaping.tool_switches(["read", "grep", "bash", "edit", "my_plugin_deploy"])
    assert switches == dict.fromkeys(
        ["apply_patch", "bash", "edit", "multiedit", "my_plugin_deploy", "patch", "task", "write"], False
    )
    assert shaping.is_read_only(switches) and not shaping.is_read_only(None) and not shaping.is_read_only({"x": False})


def test_records_keep_the_newest_turns() -> None:
    metadata: dict[str, object] = {"owner": "me"}
    ids = [new_message_id() for _ in range(shaping.MAX_RECORDS + 3)]
    for message_id in ids:
        metadata = shaping.with_record(metadata, message_id, {"schema": {}})
    assert list(metadata["shaping"]) == ids[3:] and metadata["owner"] == "me"  # type: ignore[call-overload]


def test_an_id_tells_its_creation_time_and_a_cursor_is_opencodes() -> None:
    now = 1_796_558_526_087
    assert id_time("msg_24b3b969e001224dsmMWAWLhjy", now) == 1_796_558_526_110  # an id OpenCode made then
    assert cursor(1_796_558_375_697, "msg_24b394b10001ExxQbaJeYZPnrM") == (
        "eyJpZCI6Im1zZ18yNGIzOTRiMTAwMDFFeHhRYmFKZVlaUG5yTSIsInRpbWUiOjE3OTY1NTgzNzU2OTd9"
    )


def test_text_arguments_are_never_parsed_but_lists_still_are() -> None:
    assert takes_text(str) and takes_text(str | None) and takes_text(Literal["a", "b"] | None)
    assert not takes_text(list[str] | None) and not takes_text(dict[str, int])
    server = MCPServer("t")

    @server.tool()
    def tool(
        title: str | None = None,
        answers: Annotated[list[list[str]] | None, Field()] = None,
        reply: Literal["once", "reject"] | None = None,
    ) -> str:
        return ""

    keep_text_as_given(server)
    metadata = server._tool_manager.get_tool("tool").fn_metadata  # type: ignore[union-attr]
    parsed = metadata.pre_parse_json({"title": "null", "answers": '[["yes"]]', "reply": "null"})
    assert parsed == {"title": "null", "answers": [["yes"]], "reply": "null"}
    assert metadata.validate_arguments({"title": "[1]"})["title"] == "[1]"
