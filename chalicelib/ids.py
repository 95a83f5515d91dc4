"""Opaque, time-sortable ids (ULIDs), made in the application with no database round trip."""

from __future__ import annotations

from ulid import ULID


def new_id() -> str:
    """A new 26-character ULID string, e.g. ``01JDQ3Z5M2N8X4K7V0T9R6B1CE``."""
    return str(ULID())
