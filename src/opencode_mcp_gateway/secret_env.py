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

FD_VARIABLE = "OPENCODE_MCP_GATEWAY_SECRETS_FD"
PR_SET_DUMPABLE = 4
_PIPE_SAFE = 60_000  # written before exec: must fit the pipe's buffer


# The settings that hold secrets (the SecretStr fields of config.Settings; a unit test keeps
# the two in step). Listed here so that the re-exec happens before pydantic is imported.
SECRET_SETTINGS = frozenset(
    {
        "MCP_BEARER_TOKEN",
        "OPENCODE_PASSWORD",
        "OPENCODE_API_KEY",
        "REQUEST_STATE_KEY",
        "LLM_PROXY_TOKEN",
        "WEBHOOK_SECRET",
    }
)


def take_secrets_out_of_environ() -> dict[str, str]:
    """The secrets as settings overrides (lower-case names). Re-executes the process first
    when they are in its start-up environment; returns after the re-exec only."""
    if FD_VARIABLE in os.environ:
        fd = int(os.environ.pop(FD_VARIABLE))
        with os.fdopen(fd, "rb") as pipe:
            secrets: dict[str, str] = json.loads(pipe.read() or b"{}")
        return {name.lower(): value for name, value in secrets.items()}
    found = {name: value for name, value in os.environ.items() if name.upper() in SECRET_SETTINGS}
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
