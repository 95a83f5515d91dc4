"""A ledger of the secrets the handlers see, so that a test run can prove none reached a log.

With `LOCAL_SECRETS_LEDGER=<file>` set, every worker appends to that file each OTP code,
access or refresh token, socket ticket and message body carried by the events it runs and the
replies it gives, one JSON string per line. The test suite sets it and, after the run, searches
every captured log line for every value in the ledger (tests/support/log_scan.py). Unset, the
stack writes nothing and pays nothing.

Values are found by the protocol's field names, wherever they sit in a JSON body, so a batch
send's bodies and a sign-in reply's tokens are all found the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

LEDGER_ENV = "LOCAL_SECRETS_LEDGER"
# The protocol's names for secret values. `code` also names error codes ("bad_request"):
# only all-digit codes are login codes.
SECRET_FIELDS = {"body", "code", "access_token", "refresh_token", "ticket", "token"}
BEARER = "bearer "


def secrets_in_json(value: Any) -> Iterator[str]:
    """Every secret value in a decoded JSON document, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in SECRET_FIELDS and isinstance(item, str) and _is_secret(key, item):
                yield item
            else:
                yield from secrets_in_json(item)
    elif isinstance(value, list):
        for item in value:
            yield from secrets_in_json(item)


def secrets_in_text(text: Any) -> list[str]:
    """The secrets in a body that may or may not be JSON (a frame, a request body)."""
    if not isinstance(text, str | bytes) or not text:
        return []
    try:
        return list(secrets_in_json(json.loads(text)))
    except (ValueError, RecursionError):
        return []


def secrets_in_event(event: Any) -> list[str]:
    """The secrets a Lambda event carries: its bearer token, its ticket, its body's fields."""
    if not isinstance(event, dict):
        return []
    found = []
    for name, value in (event.get("headers") or {}).items():
        if name.lower() == "authorization" and str(value).lower().startswith(BEARER):
            found.append(str(value)[len(BEARER):])
    ticket = (event.get("queryStringParameters") or {}).get("ticket")
    if isinstance(ticket, str) and ticket:
        found.append(ticket)
    return found + secrets_in_text(event.get("body"))


def secrets_in_reply(reply: Any) -> list[str]:
    """The secrets in a handler's reply (a REST reply's JSON body)."""
    return secrets_in_text(reply.get("body")) if isinstance(reply, dict) else []


def _is_secret(field: str, value: str) -> bool:
    return bool(value) and (field != "code" or value.isdigit())


class SecretLedger:
    """Appends secrets to the ledger file, a whole line per write (several processes share it)."""

    def __init__(self, path: str) -> None:
        self._path = path

    @classmethod
    def from_env(cls) -> SecretLedger | None:
        path = os.environ.get(LEDGER_ENV)
        return cls(path) if path else None

    def note(self, values: Iterable[str]) -> None:
        lines = "".join(json.dumps(value) + "\n" for value in values)
        if lines:
            with open(self._path, "a", encoding="utf-8") as ledger:
                ledger.write(lines)


def read_ledger(path: str) -> set[str]:
    """Every value noted in a ledger file (none if it was never written)."""
    try:
        with open(path, encoding="utf-8") as ledger:
            return {json.loads(line) for line in ledger if line.strip()}
    except FileNotFoundError:
        return set()
