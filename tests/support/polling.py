"""Waiting for something another thread or process does a moment later."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(condition: Callable[[], object], timeout_s: float = 5,
               interval_s: float = 0.1) -> bool:
    """Whether `condition()` became true within `timeout_s`, asked every `interval_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return True
