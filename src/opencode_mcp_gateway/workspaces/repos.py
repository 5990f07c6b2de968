"""Repositories: what callers may pass, cached clones, worktrees, commits and pushes.

A remote repository gets one cached bare clone under `<WORKSPACES_DIR>/repos/` that
later tasks fetch into; each task's worktree hangs off it. The clone has no remote in its
config (every fetch and push names the URL), and its config is rewritten before each
network command, so nothing an agent writes into it (an `insteadOf`, a helper) can
redirect the gateway's credentials.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .git import Git, RepositoryError, find_credential, strip_userinfo

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]*$")
_HEX = re.compile(r"^[0-9a-fA-F]{7,64}$")
_BARE_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n"


def check_ref_name(value: str, what: str) -> str:
    """A branch, tag or commit name git cannot mistake for an option or a revision expression."""
    name = value.strip()
    bad = (
        not _NAME.match(name)
        or len(name) > 200
        or ".." in name
        or "//" in name
        or name.endswith(("/", ".", ".lock"))
        or "/." in name
        or name in ("HEAD", "@")
        or (what == "branch" and name.startswith("refs/"))
    )
    if bad:
        raise RepositoryError(
            f"{what} {value!r} is not a valid name: use letters, digits and . _ / + - (not starting with - or ., "
            "no '..', no trailing / or .lock), e.g. main, v1.2.0 or feature/login"
        )
    return name


def check_repository(url: str, allowlist: list[str]) -> str:
    """The repository URL as given (stripped), if it is a plain http(s) URL under an allowed prefix."""
    raw = url.strip()
    if not allowlist:
        raise RepositoryError(
            "repository is not enabled on this gateway: the operator sets REPOSITORY_ALLOWLIST to the URL "
            "prefixes tasks may clone (e.g. https://git.example.com/team/)"
        )
    shown = strip_userinfo(raw)
    parts = urlsplit(raw)
    if (
        raw.startswith("-")
        or "::" in raw
        or any(c.isspace() or ord(c) < 32 for c in raw)
        or parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.query
        or parts.fragment
    ):
        raise RepositoryError(
            f"repository {shown!r} is not a plain https:// URL of a git repository "
            "(local paths, file://, ext:: and other transports are refused)"
        )
    lowered = parts.path.lower()
    if "\\" in raw or "%2e" in lowered or "%2f" in lowered or "/../" in parts.path + "/" or "/./" in parts.path + "/":
        raise RepositoryError(f"repository {shown!r} has '..', '.' or encoded path segments; give its plain URL")
    clean = clean_url(raw)
    for prefix in allowlist:
        if clean == prefix.rstrip("/") or clean.startswith(prefix if prefix.endswith("/") else prefix + "/"):
            return raw
    raise RepositoryError(
        f"repository {shown!r} is not allowed: REPOSITORY_ALLOWLIST permits URLs starting with {', '.join(allowlist)}"
    )


def clean_url(url: str) -> str:
    """The URL git is given: no credentials, no trailing slash."""
    return strip_userinfo(url.strip()).rstrip("/")


@dataclass(frozen=True)
class Tree:
    """A task's worktree: its files, its own git dir, and the repository it belongs to."""

    path: Path
    common: Path  # the repository's git dir (the cached clone, or a local repository's .git)

    @property
    def admin(self) -> Path:
        return self.common / "worktrees" / self.path.name

    def exists(self) -> bool:
        return self.path.is_dir() and self.admin.is_dir()


class Repos:
    def __init__(self, root: Path, git: Git, *, credentials_file: str | None, timeout: float, max_bytes: int) -> None:
        self.root = root
        self.git = git
        self.credentials_file = credentials_file
        self.timeout = timeout
        self.max_bytes = max_bytes

    # -- remote repositories ---------------------------------------------------------------
    def cache_for(self, url: str) -> Path:
        return self.root / "repos" / (hashlib.sha256(clean_url(url).encode()).hexdigest()[:24] + ".git")

    def sync(self, url: str) -> tuple[Path, str]:
        """Clones or fetches `url` into its cached clone; returns it and the default branch."""
        cache, clean = self.cache_for(url), clean_url(url)
        credential = find_credential(url, self.credentials_file)
        try:
            listing = self.git.run(
                ["ls-remote", "--symref", clean, "HEAD"], url=clean, credential=credential, timeout=self.timeout
            )
        except RepositoryError as exc:
            raise RepositoryError(f"reading {clean} stopped: {exc} {self._limits}") from None
        if listing.code != 0:
            raise _network_error(clean, listing.err)
        default = next(
            (ln.split()[1].removeprefix("refs/heads/") for ln in listing.out.splitlines() if ln.startswith("ref:")),
            None,
        )
        if default is None:
            raise RepositoryError(f"repository {clean} is empty (it has no default branch): push a first commit")
        with file_lock(cache.with_suffix(".lock")):
            fresh = not cache.is_dir()
            if fresh:
                cache.mkdir(parents=True)
                self.git.check(["init", "-q", "--bare", str(cache)])
            (cache / "config").write_text(_BARE_CONFIG)  # whatever was written there before is gone
            refspecs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
            try:
                fetched = self.git.run(
                    ["fetch", "-q", "--prune", clean, *refspecs],
                    git_dir=cache,
                    url=clean,
                    credential=credential,
                    timeout=self.timeout,
                    watch=lambda: self._over_limit(cache),
                )
            except RepositoryError as exc:
                self._discard(cache, fresh)
                raise RepositoryError(f"fetching {clean} stopped: {exc} {self._limits}") from None
            if fetched.code != 0:
                self._discard(cache, fresh)
                raise _network_error(clean, fetched.err)
            if reason := self._over_limit(cache):
                self._discard(cache, fresh)
                raise RepositoryError(f"fetching {clean} stopped: {reason}")
        return cache, default

    @property
    def _limits(self) -> str:
        return f"(REPOSITORY_FETCH_TIMEOUT_SECONDS={self.timeout:g}, REPOSITORY_MAX_SIZE_MB={self.max_bytes // 2**20})"

    def _over_limit(self, cache: Path) -> str | None:
        size = sum(f.stat().st_size for f in (cache / "objects").rglob("*") if f.is_file())
        if size > self.max_bytes:
            return f"the repository is larger than REPOSITORY_MAX_SIZE_MB={self.max_bytes // 2**20}"
        return None

    def _discard(self, cache: Path, fresh: bool) -> None:
        if fresh:
            shutil.rmtree(cache, ignore_errors=True)
        else:
            for partial in (cache / "objects" / "pack").glob("tmp_*"):
                partial.unlink(missing_ok=True)

    def push(self, url: str, tree: Tree, branch: str) -> None:
        clean = clean_url(url)
        with file_lock(tree.common.with_suffix(".lock")):
            (tree.common / "config").write_text(_BARE_CONFIG)
            result = self.git.run(
                ["push", "-q", "--porcelain", clean, f"refs/heads/{branch}:refs/heads/{branch}"],
                git_dir=tree.common,
                url=clean,
                credential=find_credential(url, self.credentials_file),
                timeout=self.timeout,
            )
        if result.code != 0:
            raise _network_error(clean, result.err, pushing=True)

    # -- local repositories ------------------------------------------------------------------
    def common_dir(self, directory: Path) -> Path:
        result = self.git.run(["rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=directory)
        if result.code != 0:
            raise RepositoryError(
                f"{directory} is not a git repository, and isolate needs one: run `git init` and commit there, "
                "or leave isolate out"
            )
        return Path(result.out.strip())

    def current_branch(self, common: Path) -> str:
        return self.git.check(["rev-parse", "--abbrev-ref", "HEAD"], git_dir=common).strip()

    # -- refs, worktrees, commits ----------------------------------------------------------------
    def resolve(self, common: Path, ref: str, *, remote: bool) -> str | None:
        short = ref.removeprefix("refs/heads/")
        candidates = (
            [f"refs/remotes/origin/{short}", f"refs/tags/{ref.removeprefix('refs/tags/')}"] if remote else [ref]
        )
        if _HEX.match(ref):
            candidates.append(ref)
        for candidate in candidates:
            found = self.git.run(["rev-parse", "-q", "--verify", f"{candidate}^{{commit}}"], git_dir=common)
            if found.code == 0:
                return found.out.strip()
        return None

    def branch_exists(self, common: Path, branch: str) -> bool:
        refs = [f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"]
        return any(self.git.run(["rev-parse", "-q", "--verify", r], git_dir=common).code == 0 for r in refs)

    def add_worktree(self, tree: Tree, commit: str, branch: str | None) -> None:
        tree.path.parent.mkdir(parents=True, exist_ok=True)
        where = ["-b", branch] if branch else ["--detach"]
        self.git.check(["worktree", "add", "-q", *where, str(tree.path), commit], git_dir=tree.common)

    def restore_worktree(self, tree: Tree, branch: str) -> None:
        """Puts back a worktree the janitor removed: the branch kept the work."""
        self.git.run(["worktree", "prune"], git_dir=tree.common)
        self.git.check(["worktree", "add", "-q", str(tree.path), branch], git_dir=tree.common)

    def name_branch(self, tree: Tree, branch: str) -> None:
        self.git.check(["switch", "-q", "-c", branch], git_dir=tree.admin, work_tree=tree.path, cwd=tree.path)

    def commit_all(self, tree: Tree, author: tuple[str, str], message: str, trailer: str) -> bool:
        """Commits every change in the worktree; False if there was none."""
        at = {"git_dir": tree.admin, "work_tree": tree.path, "cwd": tree.path}
        if not self.git.check(["status", "--porcelain", "--untracked-files=all"], **at).strip():
            return False
        self.git.check(["add", "-A"], **at)
        name, email = author
        identity = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
        identity |= {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        self.git.check(
            ["commit", "-q", "--no-verify", "-m", message, "-m", trailer],
            extra_env=identity,
            **at,
        )
        return True

    def head(self, common: Path, branch: str) -> str:
        return self.git.check(["rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}"], git_dir=common).strip()

    def remove_worktree(self, tree: Tree, branch: str | None = None) -> None:
        """Removes the worktree (its branch stays unless named here)."""
        self.git.run(["worktree", "remove", "--force", str(tree.path)], git_dir=tree.common)
        shutil.rmtree(tree.path, ignore_errors=True)
        self.git.run(["worktree", "prune"], git_dir=tree.common)
        if branch:
            self.git.run(["branch", "-q", "-D", branch], git_dir=tree.common)


def _network_error(url: str, err: str, *, pushing: bool = False) -> RepositoryError:
    low = err.lower()
    doing = "pushing to" if pushing else "reading"
    if any(s in low for s in ("authentication failed", "could not read username", "could not read password")) or any(
        f"returned error: {code}" in low for code in (401, 403)
    ):
        return RepositoryError(
            f"authentication failed {doing} {url}: GIT_CREDENTIALS_FILE has no entry for this host, or its "
            "token was refused or lacks the right"
        )
    if "returned error: 404" in low or "not found" in low or "does not appear to be a git repository" in low:
        return RepositoryError(f"repository {url} not found: check the URL")
    detail = err.strip().splitlines()[-1] if err.strip() else "no answer"
    if pushing:
        return RepositoryError(f"push to {url} failed: {detail}")
    return RepositoryError(f"repository {url} is not reachable: {detail}")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock shared by every gateway process on this filesystem (blocks the thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
