"""Long tasks against the real `opencode serve`: progress, cancellation, disconnects,
permission and question prompts, input timeout, follow-ups, workspaces, flaky providers."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp
import pytest
from mcp.client.session import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

from tests.conftest import GatewayPool
from tests.support.client import data, error_text, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.procs import Gateway, OpenCodeServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
TASK_ID = re.compile(r"ses_\w+\.msg_\w+")


def outside_file(tmp_path: Path) -> Path:
    """A path outside OpenCode's project: writing there makes OpenCode ask external_directory."""
    folder = tmp_path / f"outside-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    return folder / "out.txt"


def write_outside(target: Path) -> str:
    return script(
        {"tool": "write", "args": {"filePath": str(target), "content": "outside\n"}},
        {"text": "Finished after the write attempt."},
    )


class Progress:
    def __init__(self) -> None:
        self.seen: list[tuple[float, str]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, message or ""))

    @property
    def messages(self) -> list[str]:
        return [m for _, m in self.seen]


async def test_keepalive_progress_during_a_silent_step(gateways: GatewayPool) -> None:
    gw = gateways.get(PROGRESS_INTERVAL_SECONDS="1")
    progress = Progress()
    async with mcp_session(gw.mcp_url) as s:
        done = data(
            await s.call_tool(
                "run_coding_task", {"prompt": script({"text": "slow answer", "hang": 3.5})}, progress_callback=progress
            )
        )
    assert done["status"] == "completed"
    assert TASK_ID.search(progress.messages[0]) and done["task_id"] in progress.messages[0]
    keepalives = [m for m in progress.messages if m.startswith("Still working")]
    assert len(keepalives) >= 2, progress.messages
    values = [v for v, _ in progress.seen]
    assert values == sorted(set(values))


async def test_keepalive_holds_a_long_call_through_a_client_idle_timeout(gateways: GatewayPool) -> None:
    """Scaled down: 10 minutes through a 60 s idle timeout is 12 s through 2 s here."""
    gw = gateways.get(PROGRESS_INTERVAL_SECONDS="0.5")
    async with mcp_session(gw.mcp_url, idle_timeout=2) as s:
        done = data(
            await s.call_tool(
                "run_coding_task", {"prompt": script({"text": "held open", "hang": 12})}, progress_callback=Progress()
            )
        )
    assert done["status"] == "completed" and done["result"] == "held open"


def legacy_client(url: str) -> Any:
    return mcp_session(url)  # 2025-11-25: cancelling the call sends notifications/cancelled


def modern_client(url: str) -> Any:
    return mcp.Client(url)  # 2026-07-28: closing the response stream is the cancel


@pytest.mark.parametrize(
    ("connect", "protocol"), [(legacy_client, "2025-11-25"), (modern_client, "2026-07-28")], ids=["2025", "2026"]
)
async def test_client_cancel_aborts_the_opencode_run(gateway: Gateway, connect: Any, protocol: str) -> None:
    progress = Progress()
    async with connect(gateway.mcp_url) as c:
        session = getattr(c, "session", c)  # mcp.Client wraps a ClientSession
        assert session.protocol_version == protocol
        with anyio.move_on_after(3):
            await c.call_tool(
                "run_coding_task", {"prompt": script({"text": "never", "hang": 60})}, progress_callback=progress
            )
        task_id = TASK_ID.search(progress.messages[0]).group(0)  # type: ignore[union-attr]
        status = data(await c.call_tool("get_task_status", {"task_id": task_id, "wait_seconds": 20}))
    assert status["status"] == "aborted", status


async def test_disconnect_never_aborts_an_async_task(gateway: Gateway) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        started = data(await s.call_tool("run_coding_task_async", {"prompt": script({"text": "survived", "hang": 3})}))
    # the client and its HTTP connections are gone now
    async with mcp_session(gateway.mcp_url) as s:
        final = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30}))
    assert final["status"] == "completed" and final["result"] == "survived"


async def test_policy_allow_runs_headless(gateway: Gateway, tmp_path: Path) -> None:
    target = outside_file(tmp_path)
    async with mcp_session(gateway.mcp_url) as s:
        done = data(await s.call_tool("run_coding_task", {"prompt": write_outside(target), "timeout_seconds": 60}))
    assert done["status"] == "completed" and done["pending"] == []
    assert target.read_text() == "outside\n"


async def test_policy_deny_rejects_and_the_agent_continues(gateways: GatewayPool, tmp_path: Path) -> None:
    gw = gateways.get(PERMISSION_POLICY="deny")
    target = outside_file(tmp_path)
    async with mcp_session(gw.mcp_url) as s:
        done = data(await s.call_tool("run_coding_task", {"prompt": write_outside(target), "timeout_seconds": 60}))
        messages = data(await s.call_tool("get_task_messages", {"task_id": done["task_id"]}))
    assert done["status"] == "completed" and done["result"] == "Finished after the write attempt."
    assert not target.exists()
    write = next(c for m in messages["messages"] for c in m["tool_calls"] if c["tool"] == "write")
    assert write["status"] == "error" and "PERMISSION_POLICY=deny" in write["error"]
    assert any("denied by policy" in n for n in done["notices"])


async def test_policy_ask_then_respond_to_task(gateways: GatewayPool, tmp_path: Path) -> None:
    gw = gateways.get(PERMISSION_POLICY="ask")
    target = outside_file(tmp_path)
    async with mcp_session(gw.mcp_url) as s:
        started = data(await s.call_tool("run_coding_task_async", {"prompt": write_outside(target)}))
        waiting = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30}))
        assert waiting["status"] == "waiting_for_input", waiting
        (request,) = waiting["pending"]
        assert request["kind"] == "permission" and request["permission"] == "external_directory"
        assert request["id"].startswith("per_") and request["description"]
        bad = await s.call_tool(
            "respond_to_task", {"task_id": started["task_id"], "request_id": request["id"], "answers": [["x"]]}
        )
        assert bad.is_error and "once, always, reject" in error_text(bad)
        answered = data(
            await s.call_tool(
                "respond_to_task", {"task_id": started["task_id"], "request_id": request["id"], "reply": "once"}
            )
        )
        assert answered["answered"] is True
        final = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30}))
    assert final["status"] == "completed" and target.read_text() == "outside\n"


async def test_policy_ask_uses_elicitation_during_a_blocking_call(gateways: GatewayPool, tmp_path: Path) -> None:
    gw = gateways.get(PERMISSION_POLICY="ask")
    asked: list[ElicitRequestParams] = []

    async def approve(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params)
        return ElicitResult(action="accept", content={"decision": "once"})

    async def decline(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="decline")

    granted, refused = outside_file(tmp_path), outside_file(tmp_path)
    async with mcp_session(gw.mcp_url, elicitation=approve) as s:
        done = data(await s.call_tool("run_coding_task", {"prompt": write_outside(granted), "timeout_seconds": 60}))
    assert done["status"] == "completed" and granted.read_text() == "outside\n"
    assert len(asked) == 1 and "external_directory" in asked[0].message
    async with mcp_session(gw.mcp_url, elicitation=decline) as s:
        done = data(await s.call_tool("run_coding_task", {"prompt": write_outside(refused), "timeout_seconds": 60}))
    assert done["status"] == "completed" and not refused.exists()


async def test_modern_protocol_asks_with_input_required_results(gateways: GatewayPool, tmp_path: Path) -> None:
    """2026-07-28 has no back-channel: the call returns input_required, the client answers and
    calls again, and the gateway resumes the same task."""
    gw = gateways.get(PERMISSION_POLICY="ask")
    asked: list[str] = []

    async def answer(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        grant = len(asked) == 1
        return ElicitResult(action="accept", content={"decision": "once"}) if grant else ElicitResult(action="decline")

    granted, refused = outside_file(tmp_path), outside_file(tmp_path)
    async with mcp.Client(gw.mcp_url, elicitation_callback=answer) as c:
        assert c.session.protocol_version == "2026-07-28"
        first = data(await c.call_tool("run_coding_task", {"prompt": write_outside(granted), "timeout_seconds": 60}))
        second = data(await c.call_tool("run_coding_task", {"prompt": write_outside(refused), "timeout_seconds": 60}))
    assert first["status"] == "completed" and granted.read_text() == "outside\n"
    assert second["status"] == "completed" and not refused.exists()
    assert len(asked) == 2 and "external_directory" in asked[0]
    assert first["session_id"] != second["session_id"]  # each answer resumed its own task


async def test_client_that_cannot_be_asked_gets_waiting_for_input(gateways: GatewayPool, tmp_path: Path) -> None:
    gw = gateways.get(PERMISSION_POLICY="ask")
    target = outside_file(tmp_path)
    async with mcp.Client(gw.mcp_url) as c:  # declares no elicitation
        waiting = data(await c.call_tool("run_coding_task", {"prompt": write_outside(target), "timeout_seconds": 60}))
        assert waiting["status"] == "waiting_for_input" and waiting["pending"][0]["kind"] == "permission"
        request_id = waiting["pending"][0]["id"]
        await c.call_tool("respond_to_task", {"task_id": waiting["task_id"], "request_id": request_id, "reply": "once"})
        final = data(await c.call_tool("get_task_status", {"task_id": waiting["task_id"], "wait_seconds": 30}))
    assert final["status"] == "completed" and target.read_text() == "outside\n"


async def test_question_answered_with_answers(gateways: GatewayPool) -> None:
    gw = gateways.get(PERMISSION_POLICY="ask")
    question = {
        "questions": [
            {
                "question": "Which file should I change?",
                "header": "File",
                "options": [{"label": "a.py", "description": "first"}, {"label": "b.py", "description": "second"}],
            }
        ]
    }
    prompt = script({"tool": "question", "args": question}, {"text": "Thanks, changing it."})
    async with mcp_session(gw.mcp_url) as s:
        started = data(await s.call_tool("run_coding_task_async", {"prompt": prompt}))
        waiting = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30}))
        assert waiting["status"] == "waiting_for_input", waiting
        (request,) = waiting["pending"]
        assert request["kind"] == "question" and request["questions"][0]["options"] == ["a.py", "b.py"]
        await s.call_tool(
            "respond_to_task", {"task_id": started["task_id"], "request_id": request["id"], "answers": [["b.py"]]}
        )
        final = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30}))
        messages = data(await s.call_tool("get_task_messages", {"task_id": started["task_id"]}))
    assert final["status"] == "completed"
    call = next(c for m in messages["messages"] for c in m["tool_calls"] if c["tool"] == "question")
    assert "b.py" in call["output"]


async def test_unanswered_request_is_rejected_after_the_input_timeout(gateways: GatewayPool, tmp_path: Path) -> None:
    gw = gateways.get(PERMISSION_POLICY="ask", INPUT_TIMEOUT_SECONDS="2")
    target = outside_file(tmp_path)
    async with mcp_session(gw.mcp_url) as s:
        started = data(await s.call_tool("run_coding_task_async", {"prompt": write_outside(target)}))
        final = {"status": "running"}
        with anyio.fail_after(40):
            while final["status"] not in ("completed", "failed"):
                final = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 5}))
    assert final["status"] == "completed" and not target.exists()
    assert any("no answer within 2s" in n for n in final["notices"]), final["notices"]


async def test_abort_cleans_up_a_pending_request(
    gateways: GatewayPool, opencode: OpenCodeServer, tmp_path: Path
) -> None:
    gw = gateways.get(PERMISSION_POLICY="ask")
    async with mcp_session(gw.mcp_url) as s:
        started = data(await s.call_tool("run_coding_task_async", {"prompt": write_outside(outside_file(tmp_path))}))
        waiting = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30}))
        assert waiting["status"] == "waiting_for_input"
        aborted = data(await s.call_tool("abort_task", {"task_id": started["task_id"]}))
        assert aborted["status"] == "aborted"
    listed = httpx2.get(f"{opencode.url}/permission").json()
    assert not [r for r in listed if r["sessionID"] == started["session_id"]]


async def test_follow_up_continues_the_same_session(gateway: Gateway, fake_llm: FakeLLM) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        first = data(await s.call_tool("run_coding_task", {"prompt": script({"text": "first answer"}, say="ALPHA")}))
        second = data(
            await s.call_tool(
                "run_coding_task",
                {"prompt": script({"text": "second answer"}, say="BETA"), "task_id": first["task_id"]},
            )
        )
        again = data(await s.call_tool("get_task_status", {"task_id": first["task_id"]}))
    assert second["session_id"] == first["session_id"] and second["task_id"] != first["task_id"]
    assert second["result"] == "second answer" and again["result"] == "first answer"
    last = [r for r in fake_llm.requests if r["body"].get("tools") and "BETA" in str(r["body"]["messages"])][-1]
    history = str(last["body"]["messages"])
    assert "ALPHA" in history and "first answer" in history  # the context was kept


async def test_directory_scoping_and_workspace_root(gateways: GatewayPool, opencode: OpenCodeServer) -> None:
    root = opencode.root / "projects"
    project = root / "proj-a"
    project.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    gw = gateways.get(WORKSPACE_ROOT=str(root))
    steps = ({"tool": "write", "args": {"filePath": "scoped.txt", "content": "here\n"}}, {"text": "ok"})
    async with mcp_session(gw.mcp_url) as s:
        done = data(await s.call_tool("run_coding_task", {"prompt": script(*steps), "directory": str(project)}))
        relative = data(await s.call_tool("run_coding_task", {"prompt": script({"text": "ok"}), "directory": "proj-a"}))
        outside = await s.call_tool("run_coding_task", {"prompt": "x", "directory": str(opencode.workspace)})
        escape = await s.call_tool("run_coding_task", {"prompt": "x", "directory": str(project / ".." / "..")})
    assert done["status"] == "completed" and done["directory"] == str(project)
    assert (project / "scoped.txt").read_text() == "here\n" and not (opencode.workspace / "scoped.txt").exists()
    assert relative["directory"] == str(project)
    for refused in (outside, escape):
        assert refused.is_error and "outside WORKSPACE_ROOT" in error_text(refused)


async def test_flaky_provider_shows_retry_then_completes(gateway: Gateway) -> None:
    progress = Progress()
    async with mcp_session(gateway.mcp_url) as s:
        done = data(
            await s.call_tool(
                "run_coding_task", {"prompt": script({"text": "recovered", "flaky": 1})}, progress_callback=progress
            )
        )
    assert done["status"] == "completed" and done["result"] == "recovered"
    assert any("retry attempt 1" in m for m in progress.messages), progress.messages


async def test_retry_is_visible_in_the_status(gateway: Gateway) -> None:
    async with mcp_session(gateway.mcp_url) as s:
        started = data(await s.call_tool("run_coding_task_async", {"prompt": script({"text": "late", "flaky": 2})}))
        seen: dict[str, Any] = {}
        with anyio.fail_after(20):
            while not seen.get("retry"):
                seen = data(await s.call_tool("get_task_status", {"task_id": started["task_id"]}))
                await anyio.sleep(0.2)
        final = data(await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 30}))
    assert seen["status"] == "running" and seen["retry"]["attempt"] >= 1 and "overloaded" in seen["retry"]["message"]
    assert final["status"] == "completed" and final["retry"] is None


async def test_opencode_restart_mid_task_ends_in_a_clear_status(tmp_path: Path, fake_llm: FakeLLM) -> None:
    server = OpenCodeServer(tmp_path / "oc", fake_llm.url).start()  # type: ignore[attr-defined]
    gw = Gateway(tmp_path / "gw", {"OPENCODE_BASE_URL": server.url}).start()
    blocking: dict[str, Any] = {}
    try:
        async with mcp_session(gw.mcp_url) as s:

            async def run_blocking() -> None:
                result = await s.call_tool("run_coding_task", {"prompt": script({"text": "x", "hang": 60})})
                blocking.update(data(result))

            async with anyio.create_task_group() as tg:
                tg.start_soon(run_blocking)
                started = data(
                    await s.call_tool("run_coding_task_async", {"prompt": script({"text": "x", "hang": 60})})
                )
                await anyio.sleep(2)
                server.kill()
                down = await s.call_tool("get_task_status", {"task_id": started["task_id"]})
                assert down.is_error and "unreachable" in error_text(down)
                await anyio.sleep(2)  # the blocking call waits through the outage
                server.start()
                with anyio.fail_after(30):
                    final = data(
                        await s.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 10})
                    )
            health = data(await s.call_tool("health_check", {}))
        assert final["status"] == "failed" and "OpenCode stopped" in final["error"], final
        assert blocking["status"] == "failed" and "OpenCode stopped" in blocking["error"], blocking
        assert health["opencode"]["healthy"] is True
    finally:
        gw.stop()
        server.stop()
