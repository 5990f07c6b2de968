"""A scripted OpenAI-compatible chat-completions server: the only stand-in in the tests.

A test puts ``FAKE_SCRIPT: [step, ...]`` in its prompt. Step *i* is the reply when *i*
assistant messages already follow the newest user message that carries a script, so the
conversation itself holds the state and concurrent sessions need no coordination.

Steps:
  {"text": "..."}                              plain answer (finish_reason "stop")
  {"tool": "write", "args": {...}}             one tool call (finish_reason "tool_calls")
  {"tools": [{"tool": ..., "args": ...}, ...]} parallel tool calls
  {"error": 401, "message": "..."}             an HTTP error; 4xx bodies never look transient
  {"structured": {...}}                        the answer to an output format: a call of OpenCode's
                                               StructuredOutput tool with this object
Modifiers on any step:
  "delay": s    seconds between chunks          "hang": s   seconds before the first byte
  "chunks": n   split text into n chunks         "flaky": n  answer the first n tries with 503

Requests without tools (OpenCode's title generator) get the text "Fake title".
Control routes: GET /_control/requests (log of requests with the time their last byte
went out), POST /_control/reset. In process, `user_parts(marker)` returns the content
parts (text, image_url, …) of the user messages the model received that contain `marker`.
Stdlib only, so the container test can run it too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.threaded_http import serve, shut

SCRIPT_MARK = "FAKE_SCRIPT:"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def find_step(messages: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, int]:
    """The scripted step for this conversation, and its index."""
    for pos in range(len(messages) - 1, -1, -1):
        msg = messages[pos]
        if msg.get("role") != "user":
            continue
        text = _text_of(msg.get("content"))
        at = text.find(SCRIPT_MARK)
        if at < 0:
            continue
        script, _ = json.JSONDecoder().raw_decode(text[at + len(SCRIPT_MARK) :].lstrip())
        index = sum(1 for m in messages[pos + 1 :] if m.get("role") == "assistant")
        if index < len(script):
            return script[index], index
        return {"text": "Script finished."}, index
    return None, 0


class FakeLLM:
    def __init__(self, require_key: str | None = None) -> None:
        self.require_key = require_key
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.attempts: dict[str, int] = {}
        self.server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        fake = self

        class Handler(_Handler):
            llm = fake

        self.server = serve(Handler, host, port)
        return f"http://{host}:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        shut(self.server)

    # -- scripting --------------------------------------------------------------------
    def count_attempt(self, body: dict[str, Any]) -> int:
        key = hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest()
        with self.lock:
            self.attempts[key] = self.attempts.get(key, 0) + 1
            return self.attempts[key]

    def log(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)

    def user_parts(self, marker: str) -> list[dict[str, Any]]:
        """The content parts of every user message received that mentions `marker`."""
        with self.lock:
            bodies = [e["body"] for e in self.requests]
        found: list[dict[str, Any]] = []
        for body in bodies:
            for message in body.get("messages", []):
                content = message.get("content")
                if message.get("role") == "user" and marker in json.dumps(content):
                    parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
                    found.extend(p for p in parts if isinstance(p, dict))
        return found


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _split(text: str, n: int) -> list[str]:
    n = max(1, min(n, len(text) or 1))
    size = -(-len(text) // n) if text else 1
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def build_chunks(step: dict[str, Any], model: str) -> list[dict[str, Any]]:
    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
    if "structured" in step:
        step = {"tool": "StructuredOutput", "args": step["structured"]}
    calls = step.get("tools") or ([{"tool": step["tool"], "args": step.get("args", {})}] if "tool" in step else [])
    if calls:
        for i, call in enumerate(calls):
            fn = {"name": call["tool"], "arguments": json.dumps(call.get("args", {}))}
            delta = {
                "tool_calls": [{"index": i, "id": f"call_{i}_{time.time_ns()}", "type": "function", "function": fn}]
            }
            chunks.append(_chunk(model, delta))
        finish = "tool_calls"
    else:
        for piece in _split(str(step.get("text", "")), int(step.get("chunks", 1))):
            chunks.append(_chunk(model, {"content": piece}))
        finish = "stop"
    chunks.append(_chunk(model, {}, finish))
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    chunks.append({**_chunk(model, {}), "choices": [], "usage": usage})
    return chunks


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet handler that answers JSON (other fake servers of the tests build on it)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Handler(JSONHandler):
    llm: FakeLLM
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/_control/requests"):
            with self.llm.lock:
                self._json(200, list(self.llm.requests))
        elif self.path.endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.startswith("/_control/reset"):
            with self.llm.lock:
                self.llm.requests.clear()
                self.llm.attempts.clear()
            self._json(200, {"ok": True})
            return
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        self._complete(body)

    def _complete(self, body: dict[str, Any]) -> None:
        entry: dict[str, Any] = {"received": time.time(), "model": body.get("model"), "body": body}
        self.llm.log(entry)
        if self.llm.require_key and self.headers.get("authorization") != f"Bearer {self.llm.require_key}":
            self._error(401, "bad api key", entry)
            return
        step, _ = find_step(body.get("messages", [])) if body.get("tools") else (None, 0)
        if step is None:
            step = {"text": "Fake title"} if not body.get("tools") else {"text": "No script in prompt."}
        attempt = self.llm.count_attempt(body)
        entry["attempt"] = attempt
        time.sleep(float(step.get("hang", 0)))
        if attempt <= int(step.get("flaky", 0)):
            self._error(503, "upstream overloaded, try again", entry)
            return
        if "error" in step:
            self._error(int(step["error"]), str(step.get("message", "scripted error")), entry)
            return
        chunks = build_chunks(step, str(body.get("model", "fake-model")))
        if not body.get("stream"):
            self._json(200, _non_streaming(chunks))
            entry["last_byte"] = time.time()
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        delay = float(step.get("delay", 0))
        try:
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                if delay:
                    time.sleep(delay)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            entry["disconnected"] = True
        entry["last_byte"] = time.time()
        self.close_connection = True

    def _error(self, status: int, message: str, entry: dict[str, Any]) -> None:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        self._json(status, {"error": {"message": message, "type": kind, "code": status}})
        entry["status"] = status
        entry["last_byte"] = time.time()


def _non_streaming(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c.get("choices"))
    calls = [tc for c in chunks if c.get("choices") for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    finish = "tool_calls" if calls else "stop"
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": chunks[-1]["usage"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--require-key")
    args = parser.parse_args()
    llm = FakeLLM(require_key=args.require_key)
    print(f"fake LLM listening on {llm.start(args.host, args.port)}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
