"""The sliding window's arithmetic: the weighted estimate, Retry-After, and policy settings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import ConfigError
from chalicelib.services.limits import DEFAULT_POLICIES, allows, load_policies, retry_after_ms


def allowed_after(limit, window, previous, current, elapsed, wait) -> bool:
    """Would one more hit be allowed `wait` ms later, with nobody else hitting meanwhile?"""
    at = elapsed + wait
    if at < window:
        return allows(limit, window, previous, current + 1, at)
    if at < 2 * window:
        return allows(limit, window, current, 1, at - window)
    return True


@given(
    limit=st.integers(min_value=1, max_value=50),
    window=st.integers(min_value=10, max_value=100_000),
    previous=st.integers(min_value=0, max_value=200),
    current=st.integers(min_value=0, max_value=200),
    fraction=st.floats(min_value=0, max_value=0.999),
)
def test_retry_after_is_exactly_when_the_next_hit_is_allowed(limit, window, previous, current,
                                                              fraction):
    elapsed = int(window * fraction)
    if allows(limit, window, previous, current + 1, elapsed):
        return  # not denied: nothing to wait for

    wait = retry_after_ms(limit, window, previous, current, elapsed)

    assert wait >= 1
    assert allowed_after(limit, window, previous, current, elapsed, wait)
    assert not allowed_after(limit, window, previous, current, elapsed, wait - 1)


def test_the_previous_window_weighs_less_as_the_window_slides():
    # 10 per minute; 10 hits last minute, none yet in this one.
    assert not allows(10, 60_000, 10, 1, 0)          # all of last minute still counts
    assert not allows(10, 60_000, 10, 1, 5_999)
    assert allows(10, 60_000, 10, 1, 6_000)           # 9 + 1 = 10 after a tenth has slid by


def test_policies_come_from_defaults_and_rate_variables():
    policies = load_policies({"RATE_SEND_PER_USER": "7/30"})

    assert set(policies) == set(DEFAULT_POLICIES)
    assert (policies["send_per_user"].limit, policies["send_per_user"].window_ms) == (7, 30_000)
    assert policies["otp_per_phone"].limit == DEFAULT_POLICIES["otp_per_phone"][0]


@pytest.mark.parametrize("raw", ["seven", "7", "7/", "0/60", "5/0", "1/2/3"])
def test_a_malformed_rate_variable_names_itself(raw):
    with pytest.raises(ConfigError, match="RATE_OTP_PER_IP"):
        load_policies({"RATE_OTP_PER_IP": raw})
