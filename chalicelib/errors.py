"""Domain errors: one class per PROTOCOL.md error code, mapped to replies in one place."""

from __future__ import annotations

from typing import Any


class EphemeraError(Exception):
    """Base of every error a client may see; `code` and `status` come from PROTOCOL.md."""

    code = "internal"
    status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_error(self) -> dict[str, Any]:
        """The `error` object shared by REST bodies and WebSocket `error` frames."""
        return {"code": self.code, "message": self.message, **self.details}


class InvalidInput(EphemeraError):
    """The request is malformed or breaks a documented constraint."""

    code = "bad_request"
    status = 400


class Unauthorized(EphemeraError):
    """No valid credentials: missing, expired, forged or revoked."""

    code = "unauthorized"
    status = 401


class Forbidden(EphemeraError):
    """A participant asked for something their role does not allow."""

    code = "forbidden"
    status = 403


class NotFound(EphemeraError):
    """No such thing, or the caller may not know whether it exists."""

    code = "not_found"
    status = 404


class Conflict(EphemeraError):
    """The request contradicts what is already stored (e.g. a reused client_msg_id)."""

    code = "conflict"
    status = 409


class Gone(EphemeraError):
    """The addressed thing existed and is gone for good (expired, unsent)."""

    code = "gone"
    status = 410


class TooLarge(EphemeraError):
    """A body or frame is over its documented size."""

    code = "too_large"
    status = 413


class RateLimited(EphemeraError):
    """A rate-limit policy denied the request; retry after `retry_after_ms`."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after_ms: int) -> None:
        super().__init__(message, retry_after_ms=retry_after_ms)
        self.retry_after_ms = retry_after_ms

    @property
    def retry_after_s(self) -> int:
        """Whole seconds for the HTTP `Retry-After` header, never 0 while denied."""
        return max(1, -(-self.retry_after_ms // 1000))


class ConfigError(Exception):
    """Configuration is missing or malformed; the message names the variable (never shown to
    clients)."""
