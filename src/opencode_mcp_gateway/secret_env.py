"""Keep the gateway's secrets out of what other processes can read about it.

A process's start-up environment stays readable in /proc/<pid>/environ for its whole life
(changing os.environ does not touch it), and the agent OpenCode runs is a grandchild of
the gateway. So when secrets arrive in the environment, the gateway re-executes itself at
once without them, handing them to the new image through an inherited pipe. It also marks
itself non-dumpable, which closes /proc/<pid>/environ and /proc/<pid>/mem to other
processes of the same (non-root) user.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

from pydantic import SecretStr

from .config import Settings

FD_VARIABLE = "OPENCODE_MCP_GATEWAY_SECRETS_FD"
PR_SET_DUMPABLE = 4
_PIPE_SAFE = 60_000  # written before exec: must fit the pipe's buffer


def secret_names() -> set[str]:
    """Environment names of the settings that hold secrets (typed SecretStr)."""
    return {
        name.upper()
        for name, field in Settings.model_fields.items()
        if field.annotation is not None and SecretStr in getattr(field.annotation, "__args__", (field.annotation,))
    }


def take_secrets_out_of_environ() -> dict[str, str]:
    """The secrets as settings overrides (lower-case names). Re-executes the process first
    when they are in its start-up environment; returns after the re-exec only."""
    if FD_VARIABLE in os.environ:
        fd = int(os.environ.pop(FD_VARIABLE))
        with os.fdopen(fd, "rb") as pipe:
            secrets: dict[str, str] = json.loads(pipe.read() or b"{}")
        return {name.lower(): value for name, value in secrets.items()}
    wanted = secret_names()
    found = {name: value for name, value in os.environ.items() if name.upper() in wanted}
    payload = json.dumps(found).encode()
    if not found or len(payload) > _PIPE_SAFE or not sys.orig_argv:
        return {}
    read_end, write_end = os.pipe()
    os.write(write_end, payload)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    env = {name: value for name, value in os.environ.items() if name not in found}
    env[FD_VARIABLE] = str(read_end)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)  # noqa: S606 - the same program, again


def make_undumpable() -> None:
    """prctl(PR_SET_DUMPABLE, 0): no core dumps, and /proc/<pid>/{environ,mem} closed to
    other processes of this user (root keeps access)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
