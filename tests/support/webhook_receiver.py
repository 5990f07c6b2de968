"""A webhook receiver the tests start on loopback: records every delivery, scriptable per path.

    receiver = WebhookReceiver().start()
    receiver.script("/flaky", fail=2)                 # answer 503 to the first 2 deliveries
    receiver.script("/slow", hang=5)                   # wait 5 s before answering
    receiver.script("/moved", redirect="/elsewhere")   # answer 307 Location: /elsewhere
    url = receiver.url + "/flaky"
    ...
    receiver.deliveries("/flaky")                      # [Delivery(path, headers, body, status), ...]

Stdlib only (a thread per request), like the fake LLM.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.threaded_http import serve, shut


@dataclass
class Script:
    fail: int = 0  # answer this many deliveries with `status` first
    status: int = 503
    hang: float = 0.0  # seconds before answering
    redirect: str | None = None  # answer every delivery with 307 to this location


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")


class WebhookReceiver:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Delivery] = []
        self.scripts: dict[str, Script] = {}
        self.served: dict[str, int] = {}
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        self.server = serve(Handler)
        return self

    def stop(self) -> None:
        shut(self.server)

    def script(self, path: str, **how: Any) -> str:
        """Scripts `path`; returns its full URL."""
        with self.lock:
            self.scripts[path] = Script(**how)
        return self.url + path

    def deliveries(self, path: str | None = None) -> list[Delivery]:
        with self.lock:
            return [d for d in self.received if path is None or d.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 60) -> list[Delivery]:
        """Until at least `count` deliveries arrived (at `path`); fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.deliveries(path)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(self.deliveries(path))} deliveries to {path or 'any path'}, expected {count}")


class _Handler(BaseHTTPRequestHandler):
    owner: WebhookReceiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        receiver = self.owner
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        path = self.path.split("?", 1)[0]
        with receiver.lock:
            script = receiver.scripts.get(path, Script())
            served = receiver.served.get(path, 0)
            receiver.served[path] = served + 1
        if script.hang:
            time.sleep(script.hang)
        status = 200
        if script.redirect:
            status = 307
        elif served < script.fail:
            status = script.status
        with receiver.lock:
            receiver.received.append(Delivery(path, {k.lower(): v for k, v in self.headers.items()}, body, status))
        try:
            self.send_response(status)
            if script.redirect:
                self.send_header("location", script.redirect)
            self.send_header("content-length", "0")
            self.end_headers()
        except OSError:
            pass  # the sender gave up waiting
