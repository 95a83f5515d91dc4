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


def text(value: object, name: str, *, max_length: int) -> str:
    """`value` if it is a non-empty string of at most `max_length` characters, else
    `bad_request` naming the field."""
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise InvalidInput(f"{name} must be a string of 1 to {max_length} characters")
    return value


def string_field(source: dict[str, Any], name: str, *, max_length: int) -> str:
    """The field `name` of a JSON object, checked by `text`."""
    return text(source.get(name), name, max_length=max_length)


def int_field(source: dict[str, Any], name: str, *, minimum: int = 0,
              maximum: int | None = None, default: int | None = None) -> int:
    """A whole number in range (JSON booleans are not numbers here), or `bad_request`."""
    value = source.get(name, default)
    if isinstance(value, str) and value.isdigit():  # query strings arrive as text
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum or (
            maximum is not None and value > maximum):
        upper = f" to {maximum}" if maximum is not None else " or more"
        raise InvalidInput(f"{name} must be a whole number from {minimum}{upper}")
    return value
