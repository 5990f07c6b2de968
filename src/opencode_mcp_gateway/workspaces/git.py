"""Running git safely on the gateway's behalf.

Every git command runs with a fixed environment: no prompts, no system or user config
(HOME points at an empty directory), English messages, hooks off, and only the
transports the command needs. Credentials never travel in argv, in an environment
variable, or in a file: they are written into a pipe that only this one git process
inherits, and a tiny credential helper (named by fd number in `-c credential.helper`)
reads them from there. Whatever git prints is redacted before anyone sees it.

The agent can write the repository's config (the cached clone is on the volume it works
on) and the worktree's `.gitattributes`. Together they name programs git runs on its own:
filter drivers (`git add`), diff drivers and textconv (`git diff`), merge drivers. Each
command therefore first lists the config it will read and blanks every such driver, so
no program an agent chose ever runs in the gateway (where the credentials are). Diffs also
pass --no-ext-diff (docs/design.md, "The agent's boundary").
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .directory import WorkspaceError

# Passed through to git so mirrors behind a corporate proxy stay reachable.
_PASSTHROUGH = ("PATH", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_CREDENTIAL_COPIES = 4  # git asks once per process; spare copies for a retried request
# Config keys that name a program git would run by itself (a blank value disables it).
_DRIVER = re.compile(r"^(filter\..+\.(clean|smudge|process)|diff\..+\.(textconv|command)|merge\..+\.driver)$", re.S)


class RepositoryError(WorkspaceError):
    """A repository operation that failed; the message says what to fix and never holds a secret."""


@dataclass(frozen=True)
class Credential:
    username: str
    password: str


@dataclass
class GitResult:
    code: int
    out: str
    err: str


def strip_userinfo(text: str) -> str:
    """`text` with `user:secret@` removed from every URL in it."""
    return _USERINFO.sub("", text)


def find_credential(url: str, credentials_file: str | None) -> Credential | None:
    """The credential for `url`: inline `user:token@` first, else the most specific
    matching line of a git-credentials file (`https://user:token@host[/path]`). The file
    is read on each use (a rotated Secret takes effect) and never written."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return Credential(unquote(parts.username or ""), unquote(parts.password or ""))
    if not credentials_file:
        return None
    try:
        lines = Path(credentials_file).read_text().splitlines()
    except OSError as exc:
        raise RepositoryError(
            f"GIT_CREDENTIALS_FILE {credentials_file} cannot be read ({exc.strerror}); fix the mount or the setting"
        ) from None
    best: tuple[int, Credential] | None = None
    for line in lines:
        entry = urlsplit(line.strip())
        if not entry.hostname or entry.password is None:
            continue
        if (entry.scheme, entry.hostname, entry.port) != (parts.scheme, parts.hostname, parts.port):
            continue
        prefix = entry.path.rstrip("/")
        if prefix and not (parts.path == prefix or parts.path.startswith(prefix + "/")):
            continue
        if best is None or len(prefix) > best[0]:
            best = (len(prefix), Credential(unquote(entry.username or ""), unquote(entry.password)))
    return best[1] if best else None


class Git:
    """Runs git commands under the gateway's rules (see the module docstring)."""

    def __init__(self, home: Path, secrets: Callable[[], Sequence[str]] = tuple) -> None:
        self.home = home
        self._secrets = secrets

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k in _PASSTHROUGH}
        env.update(
            {
                "HOME": str(self.home),
                "LC_ALL": "C",
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_ASKPASS": "",
                "SSH_ASKPASS": "",
                "GCM_INTERACTIVE": "never",
            }
        )
        env.update(extra or {})
        return env

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        git_dir: Path | None = None,
        work_tree: Path | None = None,
        url: str | None = None,
        credential: Credential | None = None,
        timeout: float = 120.0,
        watch: Callable[[], str | None] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> GitResult:
        """One git command. `url`: the network URL it talks to (enables its transport only).
        `watch`: polled while it runs; a returned reason stops it (a size limit)."""
        config = ["-c", "core.hooksPath=" + os.devnull, "-c", "core.fsmonitor=false", "-c", "commit.gpgsign=false"]
        config += ["-c", "credential.helper="]
        config += ["-c", "protocol.allow=never"]
        if url:
            config += ["-c", f"protocol.{urlsplit(url).scheme}.allow=always"]
        env = {}
        if git_dir:
            env["GIT_DIR"] = str(git_dir)
        if work_tree:
            env["GIT_WORK_TREE"] = str(work_tree)
        env.update(extra_env or {})
        env.update(self._blank_drivers(cwd, env))
        with _credential_pipe(credential) as fd:
            if fd is not None:
                # Reads one `key=value` block per `get`; shell builtins only, so no secret in any argv.
                helper = (
                    '!f() { test "$1" = get || exit 0; '
                    f'while IFS= read -r l && [ -n "$l" ]; do printf "%s\\n" "$l"; done < /dev/fd/{fd}; }}; f'
                )
                config += ["-c", "credential.helper=" + helper]
            proc = subprocess.Popen(
                ["git", *config, *args],
                cwd=cwd,
                env=self.env(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(fd,) if fd is not None else (),
                text=True,
                start_new_session=True,  # its helpers (git-remote-https) are stopped with it
            )
            stopped, out, err = _supervise(proc, timeout, watch)
        if stopped:
            raise RepositoryError(stopped)
        return GitResult(proc.returncode, out, self.redact(err))

    def _blank_drivers(self, cwd: Path | None, env: dict[str, str]) -> dict[str, str]:
        """Config that blanks every driver program the repository's config names (reading
        config runs nothing; includes are followed, as the command itself would). Passed as
        GIT_CONFIG_KEY_<n>/GIT_CONFIG_VALUE_<n>, as strong as `-c` but never split at an
        `=` a subsection name may hold."""
        if cwd is None and "GIT_DIR" not in env:
            return {}  # no repository yet (init, ls-remote)
        listed = subprocess.run(
            ["git", "config", "--list", "--name-only", "-z"],
            cwd=cwd,
            env=self.env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
        keys = sorted({key for key in listed.stdout.split("\0") if _DRIVER.match(key.lower())})
        blanks = {f"GIT_CONFIG_KEY_{n}": key for n, key in enumerate(keys)}
        blanks |= {f"GIT_CONFIG_VALUE_{n}": "" for n in range(len(keys))}
        return {"GIT_CONFIG_COUNT": str(len(keys)), **blanks} if keys else {}

    def check(self, args: Sequence[str], **kwargs: object) -> str:
        """Output of a git command that must succeed (local plumbing: failure is a bug or a broken clone)."""
        result = self.run(args, **kwargs)  # type: ignore[arg-type]
        if result.code != 0:
            raise RepositoryError(f"git {args[0]} failed: {result.err.strip()[-500:]}")
        return result.out

    def redact(self, text: str) -> str:
        text = strip_userinfo(text)
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, "***")
        return text


@contextlib.contextmanager
def _credential_pipe(credential: Credential | None) -> Iterator[int | None]:
    if credential is None:
        yield None
        return
    read_end, write_end = os.pipe()
    try:
        block = f"username={credential.username}\npassword={credential.password}\n\n".encode()
        with os.fdopen(write_end, "wb") as pipe:  # a few hundred bytes: fits the pipe buffer
            pipe.write(block * _CREDENTIAL_COPIES)
        yield read_end
    finally:
        os.close(read_end)


def _supervise(
    proc: subprocess.Popen[str], timeout: float, watch: Callable[[], str | None] | None
) -> tuple[str | None, str, str]:
    """Waits for `proc` while reading its output; kills it on timeout or when `watch` names
    a reason. Returns (that reason, stdout, stderr)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, err = proc.communicate(timeout=0.2)  # retrying loses no output
            return None, out, err
        except subprocess.TimeoutExpired:
            pass
        reason = watch() if watch else None
        if reason is None and time.monotonic() >= deadline:
            reason = f"timed out after {timeout:g}s"
        if reason:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return reason, out, err
