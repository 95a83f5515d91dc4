"""Reading what clients send: JSON bodies and the caller's address, with clear errors."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.errors import InvalidInput, TooLarge

MAX_JSON_BYTES = 64 * 1024


def json_object(raw: bytes | str | None) -> dict[str, Any]:
    """The body as a JSON object; `bad_request` for anything else (an empty body is `{}`)."""
    if raw is None or raw in (b"", ""):
        return {}
    if len(raw) > MAX_JSON_BYTES:
        raise TooLarge(f"request bodies are limited to {MAX_JSON_BYTES} bytes")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("the body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise InvalidInput("the body must be a JSON object")
    return value


def source_ip(request_context: dict[str, Any]) -> str:
    """The client's address as API Gateway saw it (never a header the client could forge)."""
    return str(request_context.get("identity", {}).get("sourceIp") or "unknown")
