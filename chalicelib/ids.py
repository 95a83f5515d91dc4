"""Opaque, time-sortable ids (ULIDs), made in the application with no database round trip.

A ULID is 48 bits of milliseconds then 80 random bits, in Crockford's base32 (26 characters).
Ids made by one process are monotonic (the spec's monotonic variant): within a millisecond the
random part counts up, so ids sort in the order they were made. Written out here rather than
imported: python-ulid costs ~29 ms of every cold start (it reads its own package metadata).
"""

from __future__ import annotations

import secrets
import threading
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80

_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, random part) of the newest id this process made


def new_id(now_ms: int | None = None) -> str:
    """A new 26-character ULID string, e.g. ``01JDQ3Z5M2N8X4K7V0T9R6B1CE``."""
    global _last
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    with _lock:
        last_ms, last_random = _last
        if ms <= last_ms and last_random + 1 < (1 << _RANDOM_BITS):
            ms, random_part = last_ms, last_random + 1
        else:
            random_part = secrets.randbits(_RANDOM_BITS)
        _last = (ms, random_part)
    return _encode((ms << _RANDOM_BITS) | random_part)


def new_user_id() -> str:
    """A user's id: ULID-shaped, but its time part is random too. A time-sortable id would
    tell when the phone was first seen (a pending user created just now, or an account of
    long standing), and nothing may tell a phone with an account from one without."""
    return _encode(secrets.randbits(48 + _RANDOM_BITS))


def _encode(value: int) -> str:
    """128 bits as 26 characters of Crockford's base32."""
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))
