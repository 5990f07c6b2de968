"""One exception hierarchy for everything that can go wrong talking to OpenCode, and how
an answer of OpenCode becomes its value or one of them (`decode`)."""

from __future__ import annotations

from typing import Any

import httpx2


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


def decode(response: httpx2.Response, what: str) -> Any:
    """The JSON of a successful answer (None for 204); else the error it means."""
    if response.status_code == 204:
        return None
    if response.status_code == 401:
        raise OpenCodeAuthError(
            "OpenCode refused the gateway's credentials: set OPENCODE_USERNAME/OPENCODE_PASSWORD "
            "to match OPENCODE_SERVER_USERNAME/OPENCODE_SERVER_PASSWORD of opencode serve"
        )
    if response.status_code >= 400:
        message = _error_message(response) or f"HTTP {response.status_code}"
        if response.status_code == 404:
            raise OpenCodeNotFound(message)
        raise OpenCodeRequestError(f"OpenCode rejected {what}: {message}", response.status_code)
    if "json" not in response.headers.get("content-type", ""):
        # Unknown routes answer 200 with the web UI's HTML: not the OpenCode API we expect.
        raise OpenCodeNotAPI(f"OpenCode answered {what} with non-JSON content; is OPENCODE_BASE_URL right?")
    return response.json()


def _error_message(response: httpx2.Response) -> str | None:
    """OpenCode has two error shapes: {name, data:{message}} and {_tag, message}."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or None
    if isinstance(body, dict):
        data = body.get("data")
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
        if body.get("message"):
            return str(body["message"])
    return None
