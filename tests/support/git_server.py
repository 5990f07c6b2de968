"""A real git server on loopback for the tests: git's own `git http-backend` as CGI
behind a small HTTP server with basic auth (clone, fetch and push over smart HTTP)."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.threaded_http import serve, shut

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


class GitServer:
    """Serves the bare repositories under `root` at http://127.0.0.1:<port>/<name>.git."""

    def __init__(self, root: Path, username: str, password: str) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.password = password
        self.requests: list[dict[str, Any]] = []
        self.refusing_pushes = False  # pushes answer 503, as a server restarting would
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> GitServer:
        owner = self

        class Handler(_CgiHandler):
            server_owner = owner

        self.server = serve(Handler)
        return self

    def stop(self) -> None:
        shut(self.server)

    def create(self, name: str, files: dict[str, str], *, tag: str | None = None) -> str:
        """A bare repository `<name>.git` with one commit of `files` on main (and `tag` on it),
        then a second commit on main. Returns the first commit."""
        work = self.root.parent / f"{name}-seed"
        work.mkdir(parents=True)
        git("init", "-q", "-b", "main", cwd=work)
        for path, text in files.items():
            (work / path).write_text(text)
        git("add", ".", cwd=work)
        git("commit", "-qm", "first", cwd=work)
        first = git("rev-parse", "HEAD", cwd=work).strip()
        if tag:
            git("tag", tag, cwd=work)
        (work / "LATER.md").write_text("added after the first commit\n")
        git("add", ".", cwd=work)
        git("commit", "-qm", "second", cwd=work)
        git("clone", "-q", "--bare", str(work), str(self.root / f"{name}.git"))
        git("config", "http.receivepack", "true", cwd=self.root / f"{name}.git")
        return first

    def branch(self, name: str, branch: str) -> str | None:
        """The commit of `branch` on the server, or None."""
        try:
            return git("rev-parse", "--verify", f"refs/heads/{branch}", cwd=self.root / f"{name}.git").strip()
        except subprocess.CalledProcessError:
            return None


class _CgiHandler(BaseHTTPRequestHandler):
    server_owner: GitServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner = self.server_owner
        expected = "Basic " + base64.b64encode(f"{owner.username}:{owner.password}".encode()).decode()
        given = self.headers.get("authorization")
        owner.requests.append({"path": self.path, "method": self.command, "authorized": given == expected})
        if given != expected:
            self.send_response(401)
            self.send_header("www-authenticate", 'Basic realm="git"')
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body = self._body()
        path, _, query = self.path.partition("?")
        if owner.refusing_pushes and "git-receive-pack" in self.path:
            self.send_response(503)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        env = {
            **os.environ,
            **GIT_ENV,
            "GIT_PROJECT_ROOT": str(owner.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": owner.username,
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": self.headers.get("git-protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("content-encoding", ""),
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("content-length") or 0))


class SilentServer:
    """Accepts connections and never answers: a git server that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def stop(self) -> None:
        self.sock.close()
