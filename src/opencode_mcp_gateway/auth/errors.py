"""Why a request was not let in. Each failure knows its HTTP answer (RFC 6750 error codes)."""

from __future__ import annotations


class AuthError(Exception):
    """A request the gateway does not let in; the message says what to fix (never a token)."""

    status = 401
    code = "invalid_token"


class InvalidToken(AuthError):
    """Missing, unknown, expired, or for another resource: the client should get a new token."""


class InsufficientScope(AuthError):
    status = 403
    code = "insufficient_scope"

    def __init__(self, message: str, scopes: list[str]) -> None:
        super().__init__(message)
        self.scopes = scopes


class AuthUnavailable(AuthError):
    """The authorization server's keys could not be read: not the caller's fault."""

    status = 503
    code = "temporarily_unavailable"
