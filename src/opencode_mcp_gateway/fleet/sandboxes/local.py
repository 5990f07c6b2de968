"""The `local` runtime: each sandbox an `opencode serve` inside bubblewrap on this machine.

Why bubblewrap (docs/design.md, "Sandboxes"): it is the unprivileged sandboxing tool that
Flatpak and others rely on, needs no daemon, no image and no root, starts in milliseconds
and shares the gateway's own OpenCode binary read-only. Each sandbox gets:

* its own mount view: read-only system directories (/usr and the few /etc files a shell and
  git need), the OpenCode binary, Python for the relay, and read-write only its own state
  directory (OpenCode's data, home, caches, workspaces) plus the directories its caller named;
  a fresh /proc, a minimal /dev, a private /tmp;
* its own PID, IPC, UTS, user, cgroup and network namespaces (`--unshare-all`): the agent
  sees no other process (no /proc/<pid>/environ of anyone else) and reaches no port outside
  its sandbox: the gateway, the other sandboxes and the host's loopback are out of reach;
* `--die-with-parent` (the gateway's exit ends it), `--new-session` (no terminal injection),
  and only the environment OpenCode needs (nothing of the gateway's).

The gateway reaches OpenCode through a Unix socket bind-mounted out of the sandbox, and
OpenCode reaches the LLM proxy through one bind-mounted in (inside.py relays the bytes).
Every path is derived from the sandbox's name under the state directory, so any gateway
process configured alike finds a sandbox from its name alone; a file lock per name makes
two processes that start the same sandbox at once end with one.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2

from ...opencode.setup import prepare_state
from .runtime import SandboxEndpoint, SandboxError, SandboxSpec

log = logging.getLogger(__name__)

INSIDE = Path(__file__).with_name("inside.py")
OPENCODE_PORT, LLM_PORT = 4096, 4097  # on the sandbox's own loopback: every sandbox has its own
RUN = "/run/ocgw"  # inside: where the relay script and both sockets appear
ETC = ("resolv.conf", "hosts", "passwd", "group", "nsswitch.conf", "ssl", "ca-certificates", "alternatives")
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes
START_SECONDS = 60.0


def bwrap_problem() -> str | None:
    """Why bubblewrap cannot confine a process here (None: it can)."""
    binary = shutil.which("bwrap")
    if binary is None:
        return "bubblewrap (bwrap) is not installed; install it (apt-get install bubblewrap)"
    # What every sandbox needs: new namespaces, and a /proc of its own (which a container
    # engine's masked /proc forbids unless the container is run with /proc unmasked).
    probe = subprocess.run(
        [
            binary,
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return (
            f"bubblewrap cannot confine a process here ({why}); in a container, allow user namespaces and "
            "an unmasked /proc (podman run --security-opt unmask=/proc/*), or set SANDBOX=off"
        )
    return None


class LocalRuntime:
    kind = "local"

    def __init__(self, root: Path, opencode_bin: str, llm_socket: Path) -> None:
        self.root = root  # the sandboxes' state directory (OPENCODE_STATE_DIR/sandboxes)
        self.opencode_bin = os.path.realpath(opencode_bin)
        self.llm_socket = llm_socket
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._locks: dict[str, anyio.Lock] = {}

    # -- where things are (a function of the name alone) ------------------------------------
    def home(self, name: str) -> Path:
        """Everything of the sandbox the agent may see and write."""
        return self.root / name

    def _socket(self, name: str) -> Path:
        return self.root / "run" / name / "oc.sock"  # short: sun_path is 108 bytes

    def _log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"  # outside the sandbox: the agent cannot forge it

    def problem(self) -> str | None:
        found = bwrap_problem()
        if found:
            return found
        longest = self._socket("t-" + "0" * 26)
        if len(str(longest)) > MAX_SOCKET_PATH:
            return f"OPENCODE_STATE_DIR is too deep for a Unix socket path ({longest}); choose a shorter one"
        return None

    # -- the contract ----------------------------------------------------------------------------
    async def ensure(self, spec: SandboxSpec) -> SandboxEndpoint:
        endpoint = SandboxEndpoint(spec.name, "http://sandbox", uds=str(self._socket(spec.name)))
        async with self._exclusive(spec.name):
            if await self._answers(spec.name, spec.opencode_password, timeout=1.0):
                return endpoint
            await self._terminate(spec.name)  # a process that does not answer is no sandbox
            process = self._start(spec)
            try:
                await self._await_health(spec, process)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._terminate(spec.name)
                raise
        return endpoint

    async def stop(self, name: str) -> None:
        async with self._exclusive(name):
            await self._terminate(name)

    async def remove(self, name: str) -> None:
        await self.stop(name)
        for path in (self.home(name), self._socket(name).parent):
            await anyio.to_thread.run_sync(functools.partial(shutil.rmtree, path, ignore_errors=True))
        self._log(name).unlink(missing_ok=True)

    async def states(self) -> dict[str, str]:
        found: dict[str, str] = {}
        from .keys import is_sandbox_name

        for entry in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if not is_sandbox_name(entry.name):
                continue
            process = self._procs.get(entry.name)
            if process is not None and process.poll() is None:
                found[entry.name] = "running" if self._socket(entry.name).exists() else "starting"
            else:
                found[entry.name] = "running" if await self._listening(entry.name) else "stopped"
        return found

    # -- processes ---------------------------------------------------------------------------------
    def _start(self, spec: SandboxSpec) -> subprocess.Popen[bytes]:
        home = self.home(spec.name)
        work = home / "work"
        for path in (work, self._socket(spec.name).parent, self._log(spec.name).parent):
            path.mkdir(parents=True, exist_ok=True)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}  # noqa: S108 - its own tmpfs
        env |= prepare_state(home) | spec.env  # OpenCode's XDG dirs, its plugin pre-seeded (no npm at run time)
        env |= {"OPENCODE_SERVER_PASSWORD": spec.opencode_password, "LLM_PROXY_TOKEN": spec.llm_token}
        env["LLM_PROXY_URL"] = f"http://127.0.0.1:{LLM_PORT}/v1"
        command = [*self._bwrap(spec, home), *self._inside(spec.name)]
        log.info("sandbox %s: starting", spec.name)
        with open(self._log(spec.name), "ab") as out:
            # Started from the event loop's thread: --die-with-parent follows the starting
            # thread, and a worker thread of anyio's would end the sandbox when it retires.
            process = subprocess.Popen(
                command, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        self._procs[spec.name] = process
        return process

    def _bwrap(self, spec: SandboxSpec, home: Path) -> list[str]:
        args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64"):
            path = Path("/") / top
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        for name in ETC:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108 - a private tmpfs
        readable = {os.path.dirname(self.opencode_bin), os.path.realpath(sys.base_prefix)}
        for shown in sorted(readable):
            if not shown.startswith("/usr/"):
                args += ["--ro-bind", shown, shown]
        args += ["--ro-bind", str(INSIDE), f"{RUN}/inside.py", "--bind", str(self.llm_socket), f"{RUN}/llm.sock"]
        args += ["--bind", str(self._socket(spec.name).parent), f"{RUN}/out", "--bind", str(home), str(home)]
        # The cached clones, where the gateway runs git with the credentials, are read-only inside:
        # the agent cannot swap them for links (a mount point cannot be renamed) or plant anything.
        clones = home / "workspaces" / "repos"
        clones.mkdir(parents=True, exist_ok=True)
        args += ["--ro-bind", str(clones), str(clones)]
        for directory in spec.directories:
            args += ["--bind", directory, directory]
        return [*args, "--chdir", str(home / "work"), "--"]

    def _inside(self, name: str) -> list[str]:
        python = os.path.realpath(sys.executable)
        if sys.prefix != sys.base_prefix:  # a virtualenv's python: run the base interpreter
            python = os.path.join(sys.base_prefix, "bin", os.path.basename(python))
        out, llm = f"{RUN}/out/oc.sock", f"{RUN}/llm.sock"
        return [python, "-I", "-S", f"{RUN}/inside.py", self.opencode_bin, str(OPENCODE_PORT), out, llm, str(LLM_PORT)]

    async def _await_health(self, spec: SandboxSpec, process: subprocess.Popen[bytes]) -> None:
        deadline = anyio.current_time() + START_SECONDS
        while anyio.current_time() < deadline:
            if process.poll() is not None:
                code, tail = process.returncode, self._tail(spec.name)
                raise SandboxError(f"sandbox {spec.name} exited (code {code}) while starting: {tail}")
            # OpenCode accepts a connection ~0.2 s before it can answer it, and such a request
            # hangs: short attempts, retried.
            if await self._answers(spec.name, spec.opencode_password, timeout=0.5):
                log.info("sandbox %s: ready", spec.name)
                return
            await anyio.sleep(0.1)
        raise SandboxError(f"sandbox {spec.name} did not answer within {START_SECONDS:.0f}s: {self._tail(spec.name)}")

    def _tail(self, name: str) -> str:
        with contextlib.suppress(OSError):
            lines = self._log(name).read_text(errors="replace").strip().splitlines()
            return " | ".join(lines[-3:]) or "no output"
        return "no output"

    async def _answers(self, name: str, password: str, *, timeout: float) -> bool:
        socket = self._socket(name)
        if not socket.exists():
            return False
        transport = httpx2.AsyncHTTPTransport(uds=str(socket))
        auth = httpx2.BasicAuth("opencode", password)
        async with httpx2.AsyncClient(transport=transport, auth=auth, timeout=timeout) as http:
            try:
                return (await http.get("http://sandbox/global/health")).status_code == 200
            except httpx2.HTTPError:
                return False

    async def _listening(self, name: str) -> bool:
        socket = self._socket(name)
        if not socket.exists():
            return False
        try:
            stream = await anyio.connect_unix(str(socket))
        except OSError:
            return False
        await stream.aclose()
        return True

    async def _terminate(self, name: str, grace: float = 10.0) -> None:
        process = self._procs.pop(name, None)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)  # bwrap's end takes every process of the sandbox along
        with anyio.move_on_after(grace):
            await anyio.to_thread.run_sync(process.wait, abandon_on_cancel=True)
            log.info("sandbox %s: stopped", name)
            return
        process.kill()
        await anyio.to_thread.run_sync(process.wait)

    @contextlib.asynccontextmanager
    async def _exclusive(self, name: str) -> AsyncIterator[None]:
        """One start or stop of `name` at a time: in this process, and across processes."""
        lock = self._locks.setdefault(name, anyio.Lock())
        async with lock:
            path = self.root / "locks" / f"{name}.lock"
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                await anyio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock
