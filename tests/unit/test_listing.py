"""`list_tasks` pages over live sessions and the tasks a stopped sandbox left (`KeptTask`):
one order, one cursor, the caller's own only, and a kept task is never read from OpenCode."""

from __future__ import annotations

from typing import Any

import pytest

from opencode_mcp_gateway.opencode import Session
from opencode_mcp_gateway.tasks import TaskError
from opencode_mcp_gateway.tasks.ids import TaskId
from opencode_mcp_gateway.tasks.listing import KeptTask, TaskLister, TaskSummary
from opencode_mcp_gateway.tasks.ownership import Caller, acting_as
from opencode_mcp_gateway.tasks.permissions import CREATED_BY

pytestmark = pytest.mark.anyio


def session(n: int, owner: str = "alice", **metadata: Any) -> Session:
    meta = {"createdBy": CREATED_BY, "owner": owner, **metadata}
    raw = {
        "id": f"ses_{n:03d}",
        "title": f"task {n}",
        "metadata": meta,
        "time": {"created": 1_000 + n, "updated": 2_000},
    }
    return Session.model_validate(raw)


class Service:
    """Live sessions on worker `w0`, each read as `running`; and kept tasks, `completed`."""

    def __init__(self, live: list[Session], kept: list[KeptTask]) -> None:
        self.live, self.kept = live, kept
        self.read: list[str] = []

    async def all_sessions(self) -> list[tuple[str, Session]]:
        return [("w0", s) for s in self.live]

    async def kept_tasks(self) -> list[KeptTask]:
        return self.kept

    async def view(self, tid: TaskId, *, with_files: bool = True) -> Any:
        self.read.append(tid.session_id)
        if tid.session_id == "ses_missing":
            raise TaskError("unknown task_id")

        class View:
            task_id, status, read_only = f"w0:{tid.session_id}.msg_1", "running", False

        return View()


def kept(s: Session, status: str = "completed") -> KeptTask:
    summary = TaskSummary.model_validate({"task_id": f"t-x:{s.id}.msg_1", "title": s.title, "status": status})
    return KeptTask(session=s, summary=summary)


async def test_kept_tasks_take_their_place_in_the_order_and_are_not_read() -> None:
    service = Service([session(1), session(4)], [kept(session(3)), kept(session(2), "failed")])
    lister = TaskLister(service)
    with acting_as(Caller("alice")):
        first = await lister.page(status=None, limit=3, cursor=None)
        rest = await lister.page(status=None, limit=3, cursor=first.next_cursor)
    assert [(t.task_id, t.status) for t in first.tasks] == [
        ("w0:ses_004.msg_1", "running"),
        ("t-x:ses_003.msg_1", "completed"),
        ("t-x:ses_002.msg_1", "failed"),
    ]
    assert [t.task_id for t in rest.tasks] == ["w0:ses_001.msg_1"] and rest.next_cursor is None
    assert sorted(service.read) == ["ses_001", "ses_004"]  # the kept ones answered from what was kept


async def test_a_kept_task_is_filtered_and_hidden_like_a_live_one() -> None:
    others = kept(session(5, owner="bob"))
    service = Service([session(1)], [kept(session(2)), others])
    lister = TaskLister(service)
    with acting_as(Caller("alice")):
        done = await lister.page(status="completed", limit=10, cursor=None)
    assert [t.task_id for t in done.tasks] == ["t-x:ses_002.msg_1"]  # bob's is not alice's to see
    with acting_as(Caller("root", admin=True)):
        every = await lister.page(status=None, limit=10, cursor=None)
    assert len(every.tasks) == 3


async def test_a_live_session_wins_over_what_was_kept_of_it() -> None:
    """A sandbox that woke between the two reads: its OpenCode answers, not the old listing."""
    service = Service([session(2)], [kept(session(2))])
    with acting_as(Caller("alice")):
        page = await TaskLister(service).page(status=None, limit=10, cursor=None)
    assert [(t.task_id, t.status) for t in page.tasks] == [("w0:ses_002.msg_1", "running")]


async def test_keep_reads_each_gateway_task_once_and_leaves_other_sessions_out() -> None:
    foreign = Session.model_validate({"id": "ses_900", "metadata": {}, "time": {"created": 5}})
    service = Service([session(1), foreign, session(2)], [])
    kept_now = await TaskLister(service).keep()
    assert [(k.session.id, k.summary.status) for k in kept_now] == [("ses_001", "running"), ("ses_002", "running")]
    again = [KeptTask.model_validate(k.model_dump(mode="json")) for k in kept_now]
    assert again == kept_now  # what the records keep reads back the same
