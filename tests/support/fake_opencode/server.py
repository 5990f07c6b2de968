"""The fake `opencode serve`: its v1 HTTP routes over an in-memory world, as an httpx2 transport.

Shapes and status codes follow the recorded 1.18.33 behaviour (shared reference
opencode-api.md): `{name, data:{message}}` errors for a missing session, `{_tag, message}`
for a missing permission, an empty-bodied 401 with Basic auth, the web UI's HTML for an
unknown route, `/global/event` frames `{directory, payload:{type, properties}}` with
`sync` copies in between.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2

from opencode_mcp_gateway.opencode.pins import OPENCODE_VERSION

from .events import EventStream
from .listing import list_messages
from .steps import Reply, Step
from .turns import Json, Turn, World, new_id, now_ms

VERSION = OPENCODE_VERSION
EVENT_ROUTE = "GET /global/event"
AGENTS: list[Json] = [
    {"name": "build", "description": "The default agent: edits files and runs tools.", "mode": "primary"},
    {"name": "plan", "description": "Plans without editing.", "mode": "primary"},
    {"name": "explore", "description": "Explores the code base.", "mode": "subagent"},
    {"name": "title", "mode": "primary", "hidden": True},
]
PROVIDERS: Json = {
    "providers": [{"id": "fake", "name": "Fake LLM", "models": {"fake-model": {"id": "fake-model"}}}],
    "default": {"fake": "fake-model"},
}

_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"), f"{method} {path}")
    for method, path in [
        ("GET", "/global/health"),
        ("GET", "/global/event"),
        ("GET", "/agent"),
        ("GET", "/config/providers"),
        ("POST", "/session"),
        ("GET", "/session/status"),
        ("GET", "/session/{sid}"),
        ("PATCH", "/session/{sid}"),
        ("GET", "/experimental/session"),
        ("GET", "/session/{sid}/message"),
        ("POST", "/session/{sid}/prompt_async"),
        ("GET", "/session/{sid}/diff"),
        ("POST", "/session/{sid}/abort"),
        ("GET", "/permission"),
        ("POST", "/permission/{rid}/reply"),
        ("GET", "/question"),
        ("POST", "/question/{rid}/reply"),
        ("POST", "/question/{rid}/reject"),
    ]
]


@dataclass
class Fault:
    """A canned answer (or transport error) for the next `times` calls of one route."""

    route: str
    response: Callable[[httpx2.Request], httpx2.Response]
    times: int = 1


class FakeOpenCode:
    def __init__(self, directory: str = "/srv/project", *, password: str | None = None) -> None:
        self.directory = directory
        self.password = password
        self.world = World(emit=self._emit)
        self.calls: list[str] = []  # "METHOD /route/{template}" of every request, in order
        self.messages_served: list[int] = []  # how many messages each GET …/message answered with
        self.down = False  # every request fails to connect (OpenCode is not running)
        self.stream_refused = False  # new event streams fail to connect
        # OpenCode's first moments after a (re)start: it takes connections but never answers
        # a request sent then (shared reference opencode-api.md, "Startup race").
        self.starting = False
        # A fresh instance stores a prompt's user message (and starts its turn) late: the next
        # `prompt_lag` reads of that session's messages do not show it yet.
        self.prompt_lag = 0
        self._late: dict[str, list[Any]] = {}  # session id → [reads left, what storing does]
        self._scripts: deque[list[Step]] = deque()
        self._faults: list[Fault] = []
        self.events = EventStream(self.directory)

    # -- what tests use ------------------------------------------------------------------
    @property
    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self._handle)

    def queue(self, *steps: Step) -> None:
        """The script of the next prompt (prompts without one answer "Done.")."""
        self._scripts.append(list(steps))

    def resume(self, session_id: str) -> None:
        """A turn paused on `Hold` goes on."""
        turn = self.world.turns[session_id]
        assert turn.waiting == "hold", f"turn waits for {turn.waiting}, not a Hold"
        self.world.advance(turn)

    async def until(self, check: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Waits (in tiny steps) until `check()` is truthy, and returns it."""
        with anyio.fail_after(timeout):
            while not (found := check()):
                await anyio.sleep(0.005)
        return found

    async def held(self) -> str:
        """The session of a turn paused on `Hold`, once there is one."""
        found: str = await self.until(
            lambda: next((sid for sid, t in self.world.turns.items() if t.waiting == "hold"), None)
        )
        return found

    def fail(
        self,
        route: str,
        status: int = 500,
        body: str = '{"name":"UnknownError","data":{"message":"Unexpected server error."}}',
        *,
        content_type: str = "application/json",
        error: type[httpx2.TransportError] | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `route` ("GET /session/{sid}") answer `status`/`body` or raise `error`."""
        assert any(template == route for _, _, template in _ROUTES), f"unknown route {route}"

        def respond(request: httpx2.Request) -> httpx2.Response:
            if error is not None:
                raise error("injected", request=request)
            return httpx2.Response(status, content=body.encode(), headers={"content-type": content_type})

        self._faults.append(Fault(route, respond, times))

    def cut_stream(self) -> None:
        """End every open event stream (events sent until the gateway reconnects are lost)."""
        self.events.cut()

    @property
    def muted(self) -> bool:
        """While muted, events are lost and the streams stay open (a gap nobody noticed)."""
        return self.events.muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self.events.muted = value

    def _emit(self, kind: str, properties: Json, directory: str | None) -> None:
        self.events.emit(kind, properties, directory)

    def counts(self, since: int = 0) -> Counter[str]:
        """Calls per route since `len(calls)` was `since`, the event stream left out."""
        return Counter(c for c in self.calls[since:] if c != EVENT_ROUTE)

    def messages(self, session_id: str) -> list[Json]:
        return self.world.messages[session_id]

    def tool_states(self, session_id: str) -> list[Json]:
        """The state of each tool call in the session, oldest first."""
        return [p["state"] for m in self.messages(session_id) for p in m["parts"] if p["type"] == "tool"]

    # -- the transport -------------------------------------------------------------------
    async def _handle(self, request: httpx2.Request) -> httpx2.Response:
        method, path = request.method, request.url.path
        route, args = next(
            ((t, m.groupdict()) for verb, rx, t in _ROUTES if verb == method and (m := rx.match(path))), (None, {})
        )
        self.calls.append(route or f"{method} {path}")
        if self.down or (route == EVENT_ROUTE and self.stream_refused):
            raise httpx2.ConnectError("All connection attempts failed", request=request)
        if self.starting:
            await anyio.sleep_forever()
        for fault in self._faults:
            if fault.route == route and fault.times > 0:
                fault.times -= 1
                return fault.response(request)
        if self.password is not None and not self._authorized(request):
            return httpx2.Response(401, headers={"www-authenticate": 'Basic realm="Secure Area"'})
        if route is None:  # the web UI's single-page-app fallback
            return httpx2.Response(200, text="<!doctype html><html></html>", headers={"content-type": "text/html"})
        if route == EVENT_ROUTE:
            return self.events.open()
        body = json.loads(request.content) if request.content else {}
        params = dict(request.url.params)
        handler = getattr(self, "_" + re.sub(r"\W+", "_", route.lower()).strip("_"))
        result: httpx2.Response = handler(params=params, body=body, **args)
        return result

    def _authorized(self, request: httpx2.Request) -> bool:
        expected = base64.b64encode(f"opencode:{self.password}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    # -- routes --------------------------------------------------------------------------
    def _get_global_health(self, **_: Any) -> httpx2.Response:
        return _json({"healthy": True, "version": VERSION})

    def _get_agent(self, **_: Any) -> httpx2.Response:
        return _json(AGENTS)

    def _get_config_providers(self, **_: Any) -> httpx2.Response:
        return _json(PROVIDERS)

    def _post_session(self, params: Json, body: Json) -> httpx2.Response:
        session: Json = {
            "id": new_id("ses"),
            "slug": "fake",
            "projectID": "fakeproject",
            "directory": params.get("directory") or self.directory,
            "title": body.get("title") or "New session",
            "version": VERSION,
            "time": {"created": now_ms(), "updated": now_ms()},
        }
        for key in ("permission", "metadata"):
            if key in body:
                session[key] = body[key]
        self.world.sessions[session["id"]] = session
        self.world.messages[session["id"]] = []
        self._emit("session.created", {"info": session}, session["directory"])
        return _json(session)

    def _get_session_status(self, params: Json, **_: Any) -> httpx2.Response:
        directory = params.get("directory") or self.directory
        w = self.world
        return _json({sid: s for sid, s in w.statuses.items() if w.sessions[sid]["directory"] == directory})

    def _get_session_sid(self, sid: str, **_: Any) -> httpx2.Response:
        return _json(self.world.sessions[sid]) if sid in self.world.sessions else _no_session(sid)

    def _patch_session_sid(self, sid: str, body: Json, **_: Any) -> httpx2.Response:
        """OpenCode replaces the whole metadata with what is sent (and the title)."""
        if sid not in self.world.sessions:
            return _no_session(sid)
        session = self.world.sessions[sid]
        session.update({k: body[k] for k in ("title", "metadata") if k in body})  # metadata: replaced whole
        session["time"]["updated"] = now_ms()
        return _json(session)

    def _get_experimental_session(self, params: Json, **_: Any) -> httpx2.Response:
        """Every session, newest updated first (one page: the fake never holds many)."""
        return _json(sorted(self.world.sessions.values(), key=lambda s: -s["time"]["updated"]))

    def _get_session_sid_message(self, sid: str, params: Json, **_: Any) -> httpx2.Response:
        if sid not in self.world.sessions:
            return _no_session(sid)
        late = self._late.get(sid)
        if late is not None:  # a prompt stored late (prompt_lag): it lands after a few reads
            late[0] -= 1
            if late[0] < 0:
                del self._late[sid]
                late[1]()
        response, served = list_messages(self.world.messages[sid], params)
        self.messages_served.append(served)
        return response

    def _post_session_sid_prompt_async(self, sid: str, body: Json, **_: Any) -> httpx2.Response:
        if sid not in self.world.sessions:
            return _no_session(sid)
        if not body.get("parts"):
            return _json({"name": "BadRequest", "data": {"message": 'Missing key\n  at ["parts"]'}}, 400)
        directory = self.world.sessions[sid]["directory"]
        user_id = body.get("messageID") or new_id("msg")
        info: Json = {
            "id": user_id,
            "sessionID": sid,
            "role": "user",
            "time": {"created": now_ms()},
            "agent": body.get("agent") or "build",
            "model": body.get("model") or {"providerID": "fake", "modelID": "fake-model"},
            **{k: body[k] for k in ("format", "tools") if k in body},
        }
        parts = [{"id": new_id("prt"), "sessionID": sid, "messageID": user_id, **p} for p in body["parts"]]
        steps = self._scripts.popleft() if self._scripts else [Reply("Done.")]

        def store() -> None:
            self.world.messages[sid].append({"info": info, "parts": parts})
            self._emit("message.updated", {"info": info}, directory)
            self.world.start(Turn(sid, user_id, deque(steps), directory=directory))

        if self.prompt_lag:
            self._late[sid] = [self.prompt_lag, store]
        else:
            store()
        return httpx2.Response(204)

    def _get_session_sid_diff(self, sid: str, params: Json, **_: Any) -> httpx2.Response:
        if sid not in self.world.sessions:
            return _no_session(sid)
        return _json(self.world.diffs.get(params.get("messageID", ""), []))

    def _post_session_sid_abort(self, sid: str, **_: Any) -> httpx2.Response:
        if sid not in self.world.sessions:
            return _no_session(sid)
        self.world.abort(sid)
        return _json(True)

    def _get_permission(self, **_: Any) -> httpx2.Response:
        return _json(list(self.world.permissions.values()))

    def _get_question(self, **_: Any) -> httpx2.Response:
        return _json(list(self.world.questions.values()))

    def _post_permission_rid_reply(self, rid: str, body: Json, **_: Any) -> httpx2.Response:
        request = self.world.permissions.pop(rid, None)
        if request is None:
            message = f"Permission request not found: {rid}"
            return _json({"_tag": "PermissionNotFoundError", "requestID": rid, "message": message}, 404)
        reply, note = body["reply"], body.get("message")
        self._emit("permission.replied", {"sessionID": request["sessionID"], "requestID": rid, "reply": reply}, None)
        feedback = f"The user rejected permission to use this specific tool call. {note or ''}".strip()
        self.world.answer(
            rid, allow=reply != "reject", output="written", error=feedback, stop=reply == "reject" and not note
        )
        return _json(True)

    def _post_question_rid_reply(self, rid: str, body: Json, **_: Any) -> httpx2.Response:
        request = self.world.questions.pop(rid, None)
        if request is None:
            return _json({"name": "NotFoundError", "data": {"message": f"Question not found: {rid}"}}, 404)
        answers = body["answers"]
        self._emit("question.replied", {"sessionID": request["sessionID"], "requestID": rid, "answers": answers}, None)
        said = ", ".join(
            f'"{q["question"]}"="{", ".join(a)}"' for q, a in zip(request["questions"], answers, strict=False)
        )
        self.world.answer(rid, allow=True, output=f"User has answered your questions: {said}", error="")
        return _json(True)

    def _post_question_rid_reject(self, rid: str, **_: Any) -> httpx2.Response:
        request = self.world.questions.pop(rid, None)
        if request is None:
            return _json({"name": "NotFoundError", "data": {"message": f"Question not found: {rid}"}}, 404)
        self._emit("question.rejected", {"sessionID": request["sessionID"], "requestID": rid}, None)
        self.world.answer(rid, allow=False, output="", error="The user dismissed this question")
        return _json(True)


def _json(value: Any, status: int = 200) -> httpx2.Response:
    return httpx2.Response(status, json=value)


def _no_session(sid: str) -> httpx2.Response:
    return _json({"name": "NotFoundError", "data": {"message": f"Session not found: {sid}"}}, 404)
