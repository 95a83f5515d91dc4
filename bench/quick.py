"""BENCH_QUICK=1: every benchmark runs a few seconds' worth of its work, so that `make test`
can prove each one still runs to the end (tests/integration/test_benchmarks_run.py)."""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")


def is_quick() -> bool:
    return os.environ.get("BENCH_QUICK") == "1"


def sized(full: T, quick: T) -> T:
    """`quick` under BENCH_QUICK=1, else `full`."""
    return quick if is_quick() else full
