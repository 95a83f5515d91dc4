"""Reading what clients send: JSON bodies and the caller's address, with clear errors."""

from __future__ import annotations

import json
import re
from typing import Any

from chalicelib.errors import InvalidInput, TooLarge

MAX_JSON_BYTES = 64 * 1024
# The largest whole number every JSON client reads exactly (2**53 - 1); no seq comes near it.
MAX_SAFE_INTEGER = 2**53 - 1
DIGITS = re.compile(r"[0-9]{1,16}")


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
    except RecursionError as exc:  # arrays or objects nested past the parser's depth
        raise InvalidInput("the body is nested too deeply") from exc
    if not isinstance(value, dict):
        raise InvalidInput("the body must be a JSON object")
    require_utf8(value)
    return value


def require_utf8(value: Any) -> None:
    """`bad_request` for JSON whose strings hold a lone surrogate (`"\\ud800"` is valid JSON
    but no text: it cannot be stored, pushed or logged as UTF-8)."""
    try:
        if isinstance(value, str):
            value.encode("utf-8")
        elif isinstance(value, dict | list):  # numbers, booleans and null hold no text
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("strings must be valid Unicode text") from exc
    except RecursionError as exc:  # parsed near the depth limit, called from deeper still
        raise InvalidInput("the JSON is nested too deeply") from exc


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
              maximum: int = MAX_SAFE_INTEGER, default: int | None = None) -> int:
    """A whole number in range (JSON booleans are not numbers here), or `bad_request`. Query
    strings arrive as text: only ASCII digits count ("²".isdigit() is true, int("²") fails),
    and no more of them than a number in range can have."""
    value = source.get(name, default)
    if isinstance(value, str) and DIGITS.fullmatch(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise InvalidInput(f"{name} must be a whole number from {minimum} to {maximum}")
    return value
