"""HTTP replies: results and domain errors as Chalice responses (frames are in `wire.py`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, ParamSpec

from chalice import Response

from chalicelib.errors import EphemeraError, RateLimited
from chalicelib.observability import internal_failure, logger

P = ParamSpec("P")
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON reply in UTF-8 (not `\\u` escapes: a body stays the size the client sent)."""
    return Response(
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
    )


def error_response(error: EphemeraError) -> Response:
    """`{"error": {"code", "message", ...}}` with the error's status (and `Retry-After`)."""
    headers = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_s)
    return json_response({"error": error.to_error()}, status=error.status, headers=headers)


def handshake_refusal(error: EphemeraError) -> Response:
    """How `$connect` refuses: API Gateway answers the upgrade with this status (401, 403,
    429), and nothing reaches the client but the status."""
    status = error.status if error.status in (401, 403, 429) else 500
    return Response(body="", status_code=status)


def no_content() -> Response:
    return Response(body="", status_code=204)


def rest(view: Callable[P, Response]) -> Callable[P, Response]:
    """Wrap a route so domain errors become their reply and anything else a logged 500.

    Chalice turns a view's exception into its own error body, so routes go through here to
    keep PROTOCOL.md's `{"error": ...}` shape for every failure.
    """

    @functools.wraps(view)
    def handle(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return view(*args, **kwargs)
        except EphemeraError as error:
            if error.status >= 500:
                logger.exception("request failed", extra={"error_code": error.code})
            return error_response(error)
        except Exception:  # noqa: BLE001 - see internal_failure
            return error_response(internal_failure("request failed"))

    return handle
