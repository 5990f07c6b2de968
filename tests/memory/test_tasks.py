"""The tools and the task service on the fake OpenCode: submit, read, follow up, fail, abort."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.support.client import ProgressLines, data, error_text
from tests.support.fake_opencode import VERSION, Crash, Fail, Hold, Reply, Retry, SessionError, Tool
from tests.support.in_memory import in_memory_gateway

pytestmark = pytest.mark.anyio
CALC_PATCH = "--- a/calc.py\n+++ b/calc.py\n@@ -1 +1,2 @@\n def add(a, b):\n+    return a + b\n"


async def test_a_blocking_task_returns_answer_files_tokens_and_progress() -> None:
    progress = ProgressLines()
    found: dict[str, Any] = {}
    async with in_memory_gateway() as gw, gw.mcp() as c:
        edit = Tool("edit", {"filePath": "/srv/project/calc.py"}, files={"calc.py": CALC_PATCH})
        gw.fake.queue(Hold(), edit, Reply("Added."))

        async def run() -> None:
            found.update(
                data(await c.call_tool("run_coding_task", {"prompt": "Fix calc.py"}, progress_callback=progress))
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            session = await gw.fake.held()
            await gw.fake.until(lambda: progress.lines)  # the call is subscribed to the session's events
            gw.fake.resume(session)
    done = found
    assert done["status"] == "completed" and done["result"] == "Added."
    assert done["files_changed"] == [{"path": "calc.py", "status": "modified", "additions": 1, "deletions": 0}]
    assert done["tokens"]["input"] == 150 and done["model"] == "fake/fake-model" and done["agent"] == "build"
    assert done["title"] == "OCP Gateway: Fix calc.py" and done["directory"] == "/srv/project"
    assert done["task_id"] in progress.lines[0]
    assert "Running edit on calc.py" in progress.lines


async def test_async_task_is_running_until_it_ends() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Hold(), Reply("finally"))
        started = data(await c.call_tool("run_coding_task_async", {"prompt": "slow work", "title": "Slow"}))
        assert started["status"] == "running" and "get_task_status" in started["next_step"]
        assert data(await c.call_tool("get_task_status", {"task_id": started["task_id"]}))["status"] == "running"
        gw.fake.resume(started["session_id"])
        done = data(await c.call_tool("get_task_status", {"task_id": started["task_id"], "wait_seconds": 5}))
    assert done["status"] == "completed" and done["result"] == "finally" and done["title"] == "OCP Gateway: Slow"


async def test_a_follow_up_continues_the_session_and_a_bare_session_id_names_its_newest_task() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Reply("first"))
        first = data(await c.call_tool("run_coding_task", {"prompt": "one"}))
        gw.fake.queue(Reply("second"))
        second = data(await c.call_tool("run_coding_task", {"prompt": "two", "task_id": first["task_id"]}))
        newest = data(await c.call_tool("get_task_status", {"task_id": first["session_id"]}))
        again = data(await c.call_tool("get_task_status", {"task_id": first["task_id"]}))
    assert second["session_id"] == first["session_id"] and second["task_id"] != first["task_id"]
    assert (second["result"], newest["task_id"], newest["result"]) == ("second", second["task_id"], "second")
    assert again["result"] == "first"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"prompt": "  "}, "prompt is empty"),
        ({"prompt": "x", "agent": "nobody"}, "unknown agent 'nobody'; OpenCode offers: build, plan, explore"),
        ({"prompt": "x", "model": "fake"}, "must be written provider/model"),
        ({"prompt": "x", "model": "fake/none"}, "unknown model 'fake/none'; OpenCode offers: fake/fake-model"),
        ({"prompt": "x", "directory": "relative/dir"}, "must be an absolute path"),
        ({"prompt": "x", "directory": "/no/such/dir"}, "does not exist"),
        ({"prompt": "x", "task_id": "nonsense"}, "is not a task id of this gateway"),
        ({"prompt": "x", "task_id": "ses_0000000000000000.msg_0000000000000000"}, "OpenCode has no session"),
    ],
)
async def test_bad_submissions_say_what_to_fix(arguments: dict[str, Any], expected: str) -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        result = await c.call_tool("run_coding_task_async", arguments)
    assert result.is_error and expected in error_text(result), error_text(result)


async def test_directories_are_checked_against_the_workspace_root(tmp_path: Path) -> None:
    inside = tmp_path / "root" / "proj"
    inside.mkdir(parents=True)
    async with in_memory_gateway(workspace_root=str(tmp_path / "root")) as gw, gw.mcp() as c:
        ok = data(await c.call_tool("run_coding_task", {"prompt": "x", "directory": "proj"}))
        outside = await c.call_tool("run_coding_task", {"prompt": "x", "directory": str(tmp_path)})
        moved = await c.call_tool(
            "run_coding_task", {"prompt": "x", "directory": str(inside.parent), "task_id": ok["task_id"]}
        )
    assert ok["directory"] == str(inside) and ok["status"] == "completed"
    assert outside.is_error and "outside WORKSPACE_ROOT" in error_text(outside)
    assert moved.is_error and "a follow-up runs in its task's directory" in error_text(moved)


async def test_an_agent_and_model_reach_opencode() -> None:
    async with in_memory_gateway(default_model="fake/fake-model") as gw, gw.mcp() as c:
        done = data(await c.call_tool("run_coding_task", {"prompt": "x", "agent": "plan"}))
    assert done["agent"] == "plan" and done["model"] == "fake/fake-model"


@pytest.mark.parametrize(
    ("steps", "status", "error"),
    [
        ((Fail("bad api key", status_code=401),), "failed", "bad api key (HTTP 401 from the model provider)"),
        ((SessionError("Model not found: fake/x"),), "failed", "Model not found: fake/x"),
        ((Tool("bash", {"command": "make"}, error="exit 2"),), "failed", "bash failed with 'exit 2'"),
        ((Crash(),), "failed", "OpenCode stopped while this task was running"),
    ],
    ids=["provider-error", "session-error", "stopped-after-tool", "interrupted"],
)
async def test_failures_come_back_as_failed_tasks_with_the_reason(steps: Any, status: str, error: str) -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(*steps)
        done = data(await c.call_tool("run_coding_task", {"prompt": "x"}))
    assert done["status"] == status and error in done["error"], done
    assert "continues the same session" in done["next_step"]


async def test_a_retrying_provider_is_reported_while_running() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Retry(attempt=2, message="overloaded"), Hold(), Reply("ok"))
        view = data(await c.call_tool("run_coding_task", {"prompt": "x", "timeout_seconds": 0.2}))
    assert view["status"] == "running"
    assert view["retry"]["attempt"] == 2 and view["retry"]["message"] == "overloaded" and view["retry"]["next_retry_at"]


async def test_messages_page_through_the_conversation() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Tool("bash", {"command": "ls"}, output="calc.py"), Reply("Listed."))
        done = data(await c.call_tool("run_coding_task", {"prompt": "list files"}))
        every = data(await c.call_tool("get_task_messages", {"task_id": done["task_id"]}))
        newest = data(await c.call_tool("get_task_messages", {"task_id": done["task_id"], "limit": 1}))
        older = data(await c.call_tool("get_task_messages", {"task_id": done["task_id"], "limit": 1, "offset": 1}))
    assert [m["role"] for m in every["messages"]] == ["user", "assistant", "assistant"] and every["total"] == 3
    assert every["messages"][0]["text"] == "list files"
    call = every["messages"][1]["tool_calls"][0]
    assert (call["tool"], call["status"], call["output"]) == ("bash", "completed", "calc.py")
    assert newest["messages"][0]["text"] == "Listed." and older["messages"][0]["tool_calls"][0]["tool"] == "bash"


async def test_the_diff_shows_patches_and_one_file_on_request() -> None:
    files = {"calc.py": CALC_PATCH, "README.md": "+more\n"}
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Tool("write", {"filePath": "calc.py"}, files=files), Reply("Done."))
        done = data(await c.call_tool("run_coding_task", {"prompt": "x"}))
        diff = data(await c.call_tool("get_task_diff", {"task_id": done["task_id"]}))
        one = data(await c.call_tool("get_task_diff", {"task_id": done["task_id"], "path": "calc.py"}))
        other = await c.call_tool("get_task_diff", {"task_id": done["task_id"], "path": "setup.py"})
    assert sorted(f["path"] for f in diff["files"]) == ["README.md", "calc.py"]
    assert [f["patch"] for f in one["files"]] == [CALC_PATCH]
    assert other.is_error and "did not change 'setup.py'; files it changed: calc.py, README.md" in error_text(other)


async def test_abort_stops_a_running_task_and_is_harmless_after_the_end() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Hold(), Reply("never"))
        started = data(await c.call_tool("run_coding_task_async", {"prompt": "x"}))
        stopped = data(await c.call_tool("abort_task", {"task_id": started["task_id"]}))
        again = data(await c.call_tool("abort_task", {"task_id": started["task_id"]}))
        status = data(await c.call_tool("get_task_status", {"task_id": started["task_id"]}))
    assert stopped["aborted"] is True and stopped["status"] == "aborted"
    assert again["aborted"] is False and "already ended (aborted)" in again["message"]
    assert status["status"] == "aborted" and status["error"] == "The task was aborted."


async def test_agents_and_health() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        agents = data(await c.call_tool("list_agents", {}))
        health = data(await c.call_tool("health_check", {}))
        gw.fake.down = True
        down = data(await c.call_tool("health_check", {}))
    assert [a["name"] for a in agents["agents"]][:2] == ["build", "plan"] and agents["default_agent"] == "build"
    assert health["opencode"] == {"healthy": True, "version": VERSION, "url": "http://opencode.test", "error": None}
    assert health["event_stream_connected"] is True and health["permission_policy"] == "allow"
    assert down["opencode"]["healthy"] is False and "unreachable" in down["opencode"]["error"]


async def test_opencode_failures_become_tool_errors() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.fail("POST /session", 500)
        broken = await c.call_tool("run_coding_task_async", {"prompt": "x"})
        gw.fake.down = True
        down = await c.call_tool("run_coding_task_async", {"prompt": "x"})
    assert (
        broken.is_error
        and "OpenCode error: OpenCode rejected POST /session: Unexpected server error." in error_text(broken)
    )
    assert down.is_error and "Is `opencode serve` running?" in error_text(down)


async def test_tool_descriptions_carry_no_docstring_indentation() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        tools = (await c.list_tools()).tools
    for tool in tools:
        assert tool.description and "\n " not in tool.description, tool.description
    run = next(t for t in tools if t.name == "run_coding_task")
    assert run.description == (
        "Run a coding task with OpenCode and wait for it to finish.\n\n"
        "Returns the final answer, status and changed files. Sends progress notifications\n"
        "while it works. If it takes longer than timeout_seconds, returns status 'running'\n"
        "with a task_id to poll with get_task_status (the task keeps going). Cancelling\n"
        "this call aborts the task."
    )


async def test_a_long_session_is_read_by_its_newest_messages_and_its_first_task_stays_readable() -> None:
    async with in_memory_gateway() as gw, gw.mcp() as c:
        gw.fake.queue(Reply("first"))
        first = data(await c.call_tool("run_coding_task", {"prompt": "one"}))
        latest = first
        for n in range(30):  # 30 follow-ups: 62 messages in the session
            gw.fake.queue(Reply(f"reply {n}"))
            latest = data(await c.call_tool("run_coding_task", {"prompt": f"more {n}", "task_id": latest["task_id"]}))
        served = len(gw.fake.messages_served)
        newest = data(await c.call_tool("get_task_status", {"task_id": latest["task_id"]}))
        newest_reads = gw.fake.messages_served[served:]
        old = data(await c.call_tool("get_task_status", {"task_id": first["task_id"]}))
        conversation = data(await c.call_tool("get_task_messages", {"task_id": latest["task_id"], "limit": 1000}))
    assert newest["status"] == "completed" and newest["result"] == "reply 29"
    assert newest_reads and max(newest_reads) <= 50  # not the whole history on every poll
    assert old["status"] == "completed" and old["result"] == "first"  # found in a whole read
    assert conversation["total"] == 62  # the conversation still holds every earlier turn
