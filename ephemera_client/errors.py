"""What can go wrong, one type per kind; the CLI turns each into its own exit code."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Every error this library raises."""


class SignedOut(ClientError):
    """No session, or the server refused to refresh it (revoked, expired or re-used): sign in
    again."""


class Unreachable(ClientError):
    """The server did not answer (no route, refused, timed out)."""


class MessageTooLarge(ClientError):
    """A body over 16,384 bytes of UTF-8, or a frame that would exceed 32 KB: refused here,
    before anything goes on the wire."""


class ApiError(ClientError):
    """The server answered with an error: `{"error": {"code", "message", ...}}` over REST (with
    its HTTP status) or an `error` frame over the socket (status 0)."""

    def __init__(self, code: str, message: str, *, status: int = 0,
                 details: dict[str, Any] | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}
        self.retry_after_s = retry_after_s
