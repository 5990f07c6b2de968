"""One exception hierarchy for everything that can go wrong talking to OpenCode."""

from __future__ import annotations


class OpenCodeError(Exception):
    """Base class: OpenCode could not do what was asked."""


class OpenCodeUnavailable(OpenCodeError):
    """OpenCode did not answer (down, restarting, unreachable, timed out)."""


class OpenCodeAuthError(OpenCodeError):
    """OpenCode refused the gateway's credentials (OPENCODE_USERNAME/OPENCODE_PASSWORD)."""


class OpenCodeNotFound(OpenCodeError):
    """The session, message or request does not exist in OpenCode."""


class OpenCodeRequestError(OpenCodeError):
    """OpenCode answered with an error status; `status` holds it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class OpenCodeNotAPI(OpenCodeError):
    """Something answered, but not with OpenCode's JSON (a web page, another server)."""


class OpenCodeUnsupported(OpenCodeError):
    """The OpenCode at the URL is a version this gateway does not speak (or not OpenCode at
    all); `version` is the one it reported, None when nothing reported one."""

    def __init__(self, message: str, version: str | None) -> None:
        super().__init__(message)
        self.version = version
