"""Which `notify_url` a caller may give: checked at the tool surface, before any task starts.

The operator's WEBHOOK_URL_ALLOWLIST names URL prefixes; a prefix matches at a `/` boundary
(`https://hooks.example.com/team` allows `…/team` and `…/team/x`, never `…/team-b`), as
REPOSITORY_ALLOWLIST does for repositories. Only plain http(s) URLs pass: no other scheme
(`file://`, `gopher://`, …), no userinfo (a credential would travel in every request and in
the session's metadata), no `..`, `.` or encoded path segments that could walk out of an
allowed prefix on the receiving side, no fragments, spaces or control characters.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..tasks import TaskError

MAX_URL_LENGTH = 2048


class WebhookRefused(TaskError):
    """A notify_url this gateway will not send to; the message says what to fix."""


def check_notify_url(url: str, allow_list: list[str]) -> str:
    """The URL as it will be used (stripped), or WebhookRefused naming what to fix."""
    raw = url.strip()
    parts = urlsplit(raw)
    shown = _shown(raw)
    if parts.scheme.lower() not in ("http", "https"):
        raise WebhookRefused(
            f"notify_url {shown!r} is refused: only http:// and https:// URLs receive webhooks "
            "(file://, data:, and every other scheme are refused)"
        )
    if "@" in parts.netloc:
        raise WebhookRefused(
            f"notify_url {shown!r} is refused: it carries user:password@ credentials. Give the plain URL: "
            "every webhook is signed (Standard Webhooks), so the receiver can verify it without them"
        )
    if (
        not parts.hostname
        or len(raw) > MAX_URL_LENGTH
        or parts.fragment
        or any(c.isspace() or ord(c) < 32 or c == "\\" for c in raw)
    ):
        raise WebhookRefused(
            f"notify_url {shown!r} is refused: give a plain http(s) URL with a host, without a fragment, spaces "
            f"or backslashes, at most {MAX_URL_LENGTH} characters"
        )
    path = parts.path.lower()
    if "%2e" in path or "%2f" in path or "%5c" in path or "/../" in path + "/" or "/./" in path + "/":
        raise WebhookRefused(f"notify_url {shown!r} is refused: it has '..', '.' or encoded path segments")
    if not allow_list:
        raise WebhookRefused(
            "notify_url is not enabled on this gateway: the operator sets WEBHOOK_URL_ALLOWLIST to the URL "
            "prefixes webhooks may go to (e.g. https://hooks.example.com/ci/)"
        )
    if not any(_under(raw, prefix) for prefix in allow_list):
        raise WebhookRefused(
            f"notify_url {shown!r} is not allowed: WEBHOOK_URL_ALLOWLIST permits URLs starting with "
            f"{', '.join(allow_list)}"
        )
    return raw


def _under(url: str, prefix: str) -> bool:
    """`url` lies under `prefix` at a `/` boundary; scheme and host compare case-insensitively."""
    u, p = urlsplit(url), urlsplit(prefix)
    if (u.scheme.lower(), u.netloc.lower()) != (p.scheme.lower(), p.netloc.lower()):
        return False
    base = p.path.rstrip("/")
    path = u.path or "/"
    return path.rstrip("/") == base or path.startswith(base + "/")


def _shown(url: str) -> str:
    """The URL fit for an error message (which the SDK logs): no userinfo and no query, where a
    receiver's token often sits."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
    try:
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a port that is not a number
        netloc = host
    return parts._replace(netloc=netloc, query="", fragment="").geturl()[:200]
