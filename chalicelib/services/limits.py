"""The rate-limit hook every guarded action calls. The sliding-window limiter that fills it
lands with the rate-limiting work; until then every check passes."""

from __future__ import annotations

from typing import Protocol


class Limiter(Protocol):
    def check(self, policy: str, key: str) -> None:
        """Count one hit of `key` against `policy`; raise `RateLimited` when over it."""


class NoLimits:
    """Admits everything (no policy is enforced yet)."""

    def check(self, policy: str, key: str) -> None:
        return None
