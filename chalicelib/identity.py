"""Who is calling: kept apart from the auth service so that handlers which only need the type
do not import the JWT and phone-number libraries (cold starts)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """An authenticated user on one of their devices."""

    user_id: str
    device_id: str
