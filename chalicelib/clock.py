"""The one clock: UTC milliseconds since the epoch, injectable so tests can stop time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the time in UTC milliseconds."""

    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock time, as every deployed function uses."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FixedClock:
    """A clock that moves only when told to; for tests and what-if runs."""

    def __init__(self, now_ms: int = 1_767_225_600_000) -> None:
        self._now_ms = now_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, *, ms: int = 0, seconds: float = 0) -> None:
        self._now_ms += ms + int(seconds * 1000)

    def set(self, now_ms: int) -> None:
        self._now_ms = now_ms
