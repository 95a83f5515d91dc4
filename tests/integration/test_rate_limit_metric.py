"""RateLimitDenials: one per request a rate limit refuses, with no dimension but the service's
(a user or policy dimension would be a metric per value, each billed); the policies that said
no go on the invocation's log line instead."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from chalicelib.errors import RateLimited
from chalicelib.observability import log_invocation, metrics
from chalicelib.services.limits import Policy, SlidingWindowLimiter


@pytest.fixture
def pending_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def two_policies(db, clock) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(db=db, clock=clock, policies={
        "send_burst_per_user": Policy("send_burst_per_user", 1, 10_000),
        "send_per_user": Policy("send_per_user", 5, 60_000)})


def denials() -> list[float]:
    return list(metrics.metric_set.get("RateLimitDenials", {}).get("Value", []))


def test_admitted_requests_count_no_denial(db, clock, pending_metrics):
    limiter = two_policies(db, clock)

    limiter.check([("send_burst_per_user", "01ALICE"), ("send_per_user", "01ALICE")])

    assert denials() == []


def test_each_denied_request_counts_one_denial_however_many_policies_refused(
        db, clock, pending_metrics):
    limiter = two_policies(db, clock)
    checks = [("send_burst_per_user", "01ALICE"), ("send_per_user", "01ALICE")]
    limiter.check(checks)

    for _ in range(2):
        with pytest.raises(RateLimited):
            limiter.check(checks)

    assert denials() == [1, 1]


def test_the_denial_metric_carries_no_user_or_policy_dimension(db, clock, pending_metrics):
    limiter = two_policies(db, clock)
    limiter.check([("send_burst_per_user", "01ALICE")])
    with pytest.raises(RateLimited):
        limiter.check([("send_burst_per_user", "01ALICE")])

    document = metrics.serialize_metric_set()

    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["service"]]
    assert {"Name": "RateLimitDenials", "Unit": "Count"} in directive["Metrics"]
    assert "01ALICE" not in json.dumps(document)
    assert "send_burst_per_user" not in json.dumps(document)


def test_the_refusing_policies_are_named_on_the_invocations_record(db, clock, log_lines,
                                                                   pending_metrics):
    limiter = two_policies(db, clock)
    limiter.check([("send_burst_per_user", "01ALICE"), ("send_per_user", "01ALICE")])

    def refused(event: object) -> None:
        with pytest.raises(RateLimited):
            limiter.check([("send_burst_per_user", "01ALICE"), ("send_per_user", "01ALICE")])

    log_invocation(None, refused)

    (record,) = [line for line in log_lines() if line["message"] == "invocation"]
    assert record["rate_limited"] == ["send_burst_per_user"]
    assert record["RateLimitDenials"] == [1.0]
