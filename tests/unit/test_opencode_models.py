"""OpenCode's payloads as the gateway reads them: newer fields pass, nulls read as defaults."""

from __future__ import annotations

from opencode_mcp_gateway.opencode import Agent, Health, Session


def test_a_session_from_a_newer_opencode_keeps_the_fields_the_gateway_does_not_know() -> None:
    raw = {
        "id": "ses_1",
        "directory": "/srv/p",
        "title": "t",
        "metadata": {"owner": "alice", "fromAnotherTool": 1},
        "time": {"created": 5, "updated": 7, "archived": None},
        "share": {"url": "x"},
    }
    session = Session.model_validate(raw)
    assert (session.id, session.directory, session.time.created, session.time.updated) == ("ses_1", "/srv/p", 5, 7)
    assert session.metadata["fromAnotherTool"] == 1  # written back as it was
    assert session.model_dump()["share"] == {"url": "x"}


def test_null_or_missing_fields_read_as_empty() -> None:
    session = Session.model_validate({"id": "ses_1", "metadata": None, "time": None})
    assert session.metadata == {} and session.time.created == 0 and session.directory is None


def test_health_and_agents() -> None:
    assert Health.model_validate({"healthy": True, "version": "1.18.33"}).version == "1.18.33"
    assert not Health.model_validate({}).healthy
    agents = [Agent.model_validate(a) for a in ({"name": "build", "mode": "primary"}, {"name": "x", "mode": "hidden"})]
    assert [a.name for a in agents if a.usable] == ["build"]
