"""The workspace rules, and the check of where OpenCode really put a new session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opencode_mcp_gateway.config import Settings
from opencode_mcp_gateway.opencode import Session
from opencode_mcp_gateway.tasks import TaskRequest, TaskService
from opencode_mcp_gateway.workspaces import WorkspaceError
from opencode_mcp_gateway.workspaces.directory import resolve_directory

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("name", ["a\\..\\etc", "a%2f..%2fetc", "a%2E%2E", "tab\there", "nul\x00"])
def test_names_opencode_would_reinterpret_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="different path"):
        resolve_directory(name, str(tmp_path))


def test_plain_names_and_a_lone_percent_are_fine(tmp_path: Path) -> None:
    (tmp_path / "100% done").mkdir()
    assert resolve_directory("100% done", str(tmp_path)) == str(tmp_path / "100% done")


class OpenCodeThatMisplaces:
    """Creates every session in /etc, whatever directory it was asked for."""

    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.prompted = False

    async def create_session(self, **_: Any) -> Session:
        return Session(id="ses_misplaced", directory="/etc")

    async def delete_session(self, session_id: str) -> None:
        self.deleted.append(session_id)

    async def prompt_async(self, *_: Any, **__: Any) -> None:
        self.prompted = True

    @property
    def versions(self) -> Any:
        return self  # a supported OpenCode

    async def require(self) -> None:
        return None


class AnyAgent:
    async def check_agent(self, *_: Any) -> None:
        return None


async def test_a_session_opencode_placed_elsewhere_is_deleted_before_it_runs(tmp_path: Path) -> None:
    client = OpenCodeThatMisplaces()
    settings = Settings(_env_file=None, workspace_root=str(tmp_path))  # type: ignore[call-arg]
    service = TaskService(settings, client, None, None, AnyAgent())  # type: ignore[arg-type]
    (tmp_path / "project").mkdir()
    with pytest.raises(WorkspaceError, match="instead of"):
        await service.submit(TaskRequest(prompt="pwd", directory="project"))
    assert client.deleted == ["ses_misplaced"] and not client.prompted
