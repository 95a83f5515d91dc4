"""Opaque, time-sortable ids (ULIDs), made in the application with no database round trip.

A ULID is 48 bits of milliseconds then 80 random bits, in Crockford's base32 (26 characters).
Written out here rather than imported: python-ulid costs ~29 ms of every cold start (it reads
its own package metadata at import), for what is a dozen lines.
"""

from __future__ import annotations

import secrets
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(now_ms: int | None = None) -> str:
    """A new 26-character ULID string, e.g. ``01JDQ3Z5M2N8X4K7V0T9R6B1CE``."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    value = (ms << 80) | secrets.randbits(80)
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))
