"""Sliding-window rate limits, shared by every Lambda through the database.

The weighted two-window counter: a policy allows `limit` hits per `window`; a hit at time t
counts the current fixed window's hits plus the previous window's, weighted by how much of it
still lies inside the sliding window ending at t. Counts live in `rate_limit_windows`, one row
per (bucket, window). A check increments its rows and reads them in the caller's transaction,
under the rows' locks, so concurrent checks cannot over-admit; a denied check raises, the
transaction rolls back, and nothing it did (its own hit included) is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.clock import Clock
from chalicelib.errors import ConfigError, RateLimited
from chalicelib.observability import metrics, tag
from chalicelib.storage import rate_limits
from chalicelib.storage.database import Database, Later, Transaction
from chalicelib.storage.rate_limits import Counts


@dataclass(frozen=True)
class Policy:
    name: str
    limit: int
    window_ms: int


# Defaults (README "Rate limits"); each can be changed with RATE_<NAME>=<limit>/<seconds>.
DEFAULT_POLICIES = {
    "otp_per_phone": (3, 600),           # codes to one number from one network, per 10 minutes
    "otp_per_phone_daily": (10, 86_400),  # the same, per day
    "otp_per_phone_global": (30, 86_400),  # codes to one number from all networks, per day
    "otp_per_country": (300, 3_600),     # codes to one country calling code, per hour
    "otp_per_ip": (20, 3_600),           # code requests from one address per hour
    "verify_per_phone": (10, 600),       # code guesses for one number from one network
    "verify_per_phone_global": (60, 600),  # code guesses for one number from all networks
    "ticket_per_user": (30, 60),         # WebSocket tickets
    "connect_per_user": (30, 60),        # WebSocket handshakes that reach $connect
    "send_burst_per_user": (20, 10),     # messages, short burst
    "send_per_user": (120, 60),          # messages, sustained
    "send_per_new_user": (20, 60),       # the same, for accounts younger than a day
    "send_per_conversation": (300, 60),  # all members together, per conversation
    "send_same_body": (5, 600),          # one identical body (20+ characters) from one sender
    "frames_per_connection": (240, 60),  # every frame on one socket, sends included
    "conversations_per_user": (30, 3_600),     # POST /conversations and member additions
    "conversations_per_new_user": (5, 3_600),  # the same, accounts younger than a day
    "new_contacts_per_user": (50, 86_400),     # people added who were strangers, per day
    "export_per_user": (5, 3_600),             # GET /me/export: a big read, not a feed
}
NEW_ACCOUNT_MS = 24 * 3600 * 1000
SPAM_MIN_BODY = 20  # shorter bodies ("ok", "lol") repeat innocently


def load_policies(env: Mapping[str, str]) -> dict[str, Policy]:
    """The default policies, with RATE_<NAME>=<limit>/<seconds> overrides."""
    policies = {}
    for name, (limit, window_s) in DEFAULT_POLICIES.items():
        variable = f"RATE_{name.upper()}"
        if env.get(variable):
            limit, window_s = _parse_policy(variable, env[variable])
        policies[name] = Policy(name, limit, window_s * 1000)
    return policies


def _parse_policy(variable: str, raw: str) -> tuple[int, int]:
    try:
        limit, window_s = (int(part) for part in raw.split("/"))
    except ValueError as exc:
        raise ConfigError(f"{variable} must look like <limit>/<seconds>, e.g. 20/60") from exc
    if limit < 1 or window_s < 1:
        raise ConfigError(f"{variable} needs a limit and a window of at least 1")
    return limit, window_s


def allows(limit: int, window_ms: int, previous: int, current: int, elapsed_ms: int) -> bool:
    """The weighted estimate, in integers: previous * (W - e) / W + current <= limit."""
    return previous * (window_ms - elapsed_ms) + current * window_ms <= limit * window_ms


def retry_after_ms(limit: int, window_ms: int, previous: int, current: int,
                   elapsed_ms: int, cost: int = 1) -> int:
    """How long until `cost` more hits are allowed, if nobody else hits the bucket meanwhile.
    `current` does not include the denied hits. (More than `limit` at once never fits: the
    answer is then the two windows it takes to forget everything.)"""
    if cost > limit:
        return 2 * window_ms - elapsed_ms
    if current + cost <= limit and previous > 0:
        # Still in this window: wait for the previous window's weight to fall enough.
        needed = window_ms - elapsed_ms - ((limit - current - cost) * window_ms) // previous
        wait = max(1, needed)
        if elapsed_ms + wait < window_ms:
            while not allows(limit, window_ms, previous, current + cost, elapsed_ms + wait):
                wait += 1  # integer rounding: at most a step or two
            return wait
    # The next window: this one's hits become the weighted "previous".
    to_next = window_ms - elapsed_ms
    if current == 0:
        return to_next
    into = max(0, window_ms - ((limit - cost) * window_ms) // current)
    while not allows(limit, window_ms, current, cost, into):
        into += 1
    return to_next + into


class Verdict(Protocol):
    def enforce(self) -> None:
        """Raise `RateLimited` if any counted check is over its limit (reading the counts
        sends the transaction's queue if it has not gone yet)."""


class Admitted:
    """The verdict when nothing was counted."""

    def enforce(self) -> None:
        return None


class Limiter(Protocol):
    def check(self, checks: list[tuple[str, str]]) -> None:
        """Count one hit on each (policy, key) in a transaction of its own; raise
        `RateLimited` (and count nothing) when any is over its limit."""

    def check_txn(self, txn: Transaction, checks: list[tuple[str, str]], now_ms: int, *,
                  cost: int = 1) -> None:
        """The same inside the caller's transaction: a denial rolls all of it back. `cost`
        hits are counted on each (e.g. one per pending user a request creates)."""

    def count(self, txn: Transaction, checks: list[tuple[str, str]], now_ms: int, *,
              cost: int = 1) -> Verdict:
        """`check_txn` in two steps, so the counting travels with the caller's next statement
        (one round trip for both): queue the hits and the read of the counts now, `enforce`
        the verdict after that statement."""


class SlidingWindowLimiter:
    def __init__(self, *, db: Database, clock: Clock, policies: dict[str, Policy]) -> None:
        self._db = db
        self._clock = clock
        self._policies = policies

    def check(self, checks: list[tuple[str, str]]) -> None:
        self._db.run_transaction("limits.check", self.check_txn, checks, self._clock.now_ms())

    def check_txn(self, txn: Transaction, checks: list[tuple[str, str]], now_ms: int, *,
                  cost: int = 1) -> None:
        self.count(txn, checks, now_ms, cost=cost).enforce()

    def count(self, txn: Transaction, checks: list[tuple[str, str]], now_ms: int, *,
              cost: int = 1) -> Verdict:
        if not checks or cost < 1:
            return Admitted()
        buckets = []
        for policy_name, key in checks:
            policy = self._policies[policy_name]
            start = now_ms - now_ms % policy.window_ms
            buckets.append(_Bucket(policy, f"{policy.name}:{key}", start))
        rate_limits.count_hits(txn, [(b.name, b.start, b.start + 2 * b.policy.window_ms, cost)
                                     for b in buckets])
        counts = rate_limits.read_counts(
            txn, [(b.name, b.start - b.policy.window_ms) for b in buckets]
            + [(b.name, b.start) for b in buckets])
        return _Counted(buckets, counts, now_ms, cost)


@dataclass(frozen=True)
class _Bucket:
    policy: Policy
    name: str
    start: int  # of the current fixed window


@dataclass(frozen=True)
class _Counted:
    buckets: list[_Bucket]
    counts: Later[Counts]
    now_ms: int
    cost: int

    def enforce(self) -> None:
        counts = self.counts.value
        waits = []
        denied = []
        for bucket in self.buckets:
            policy = bucket.policy
            previous = counts.get((bucket.name, bucket.start - policy.window_ms), 0)
            current = counts.get((bucket.name, bucket.start), 0)
            elapsed = self.now_ms - bucket.start
            if not allows(policy.limit, policy.window_ms, previous, current, elapsed):
                waits.append(retry_after_ms(policy.limit, policy.window_ms, previous,
                                            current - self.cost, elapsed, self.cost))
                denied.append(policy.name)
        if waits:
            count_denial(denied)
            raise RateLimited("too many requests; slow down", retry_after_ms=max(waits))


def count_denial(policies: list[str]) -> None:
    """One RateLimitDenials per denied request (docs/OPERATE.md). Its only dimension is the
    service's: every user or policy as a dimension would be a metric of its own, each billed.
    Which policies said no goes on the invocation's record instead."""
    metrics.add_metric(name="RateLimitDenials", unit=MetricUnit.Count, value=1)
    tag(rate_limited=policies)


class NoLimits:
    """Admits everything: for tests of other things, and for benchmarks without a limiter."""

    def check(self, checks: list[tuple[str, str]]) -> None:
        return None

    def check_txn(self, txn: Transaction, checks: list[tuple[str, str]], now_ms: int, *,
                  cost: int = 1) -> None:
        return None

    def count(self, txn: Transaction, checks: list[tuple[str, str]], now_ms: int, *,
              cost: int = 1) -> Verdict:
        return Admitted()
