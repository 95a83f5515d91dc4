"""What the benchmarks that go through the local stack share: the stack in a subprocess with
every rate limit lifted (a benchmark times the path, not the limiter: bench/limits.py measures
that), and the limits lifted the same way for benchmarks that build services in-process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from chalicelib.services.limits import DEFAULT_POLICIES, Policy
from tests.e2e.conftest import RunningStack

# A million hits a second: no benchmark comes near it.
UNLIMITED = "1000000/1"


def unlimited_rates_env() -> dict[str, str]:
    """RATE_<POLICY>=<limit>/<seconds> for every policy, each lifted out of reach."""
    return {f"RATE_{name.upper()}": UNLIMITED for name in DEFAULT_POLICIES}


def unlimited_policies() -> dict[str, Policy]:
    """The same lift, as policies for a limiter built in-process."""
    limit, window_s = (int(part) for part in UNLIMITED.split("/"))
    return {name: Policy(name, limit, window_s * 1000) for name in DEFAULT_POLICIES}


@contextmanager
def running_stack(database_url: str, **env: str) -> Iterator[RunningStack]:
    """`python -m local_stack` on `database_url`, limits lifted, ready; stopped after."""
    stack = RunningStack({"DATABASE_URL": database_url, "POWERTOOLS_LOG_LEVEL": "WARNING",
                          **unlimited_rates_env(), **env})
    try:
        stack.wait_until_ready()
        yield stack
    finally:
        stack.stop()
