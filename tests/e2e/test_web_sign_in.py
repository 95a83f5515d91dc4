"""Signing in from the web client as people type their numbers: national formats read with the
country of the browser's locale, errors in words, and "Resend code" once the server allows it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.web_client import WebUser, browser_windows

RESEND_AFTER = "00:31"  # the server's resend_after (30 s) and a second, on the page's clock


@pytest.fixture
def window_in(browser, stack) -> Iterator[Callable[[str, str], WebUser]]:
    """Opens a browser window whose locale is `locale` for someone who types `phone`."""
    with browser_windows(browser, stack.base_url) as open_window:
        yield lambda locale, phone: open_window(phone, locale=locale)


@pytest.mark.parametrize(("locale", "typed", "e164", "country"), [
    ("en-US", "415 555 0123", "+14155550123", "US"),
    ("en-US", "(415) 555-0124", "+14155550124", "US"),
    ("en-GB", "07400 123456", "+447400123456", "GB"),
])
def test_a_national_number_signs_in_with_the_country_of_the_browser_locale(
        window_in, stack, locale, typed, e164, country):
    user = window_in(locale, typed)
    user.page.goto(user.base_url)
    expect(user.page.get_by_label("Country", exact=True)).to_have_value(country)

    user.sign_in()

    assert len(stack.outbox(e164)) == 1  # the server was sent the number in E.164
    assert user.session_storage()["phone"] == e164


def test_a_full_international_number_works_whatever_the_locale(window_in, stack):
    user = window_in("en-GB", "+1 415 555 0125").sign_in()
    assert user.session_storage()["phone"] == "+14155550125"


def test_an_impossible_number_is_refused_in_words_before_any_request(window_in):
    user = window_in("en-US", "415 555")
    code_requests: list[str] = []
    user.page.on("request", lambda request: code_requests.append(request.url)
                 if request.url.endswith("/auth/otp") else None)
    user.page.goto(user.base_url)
    user.page.get_by_label("Phone number", exact=True).fill(user.phone)
    user.page.get_by_role("button", name="Send code").click()

    expect(user.page.get_by_role("alert")).to_have_text(
        "That doesn't look like a full phone number for United States.")
    expect(user.page.get_by_role("form", name="Sign in")).to_be_visible()
    assert code_requests == []


def test_a_number_the_server_cannot_text_is_refused_in_words_not_the_servers(window_in):
    user = window_in("en-GB", "020 7946 0018")  # a London landline: possible, but no SMS
    user.page.goto(user.base_url)
    user.page.get_by_label("Phone number", exact=True).fill(user.phone)
    user.page.get_by_role("button", name="Send code").click()

    expect(user.page.get_by_role("alert")).to_have_text(
        "We can't text that number. Check that it's a mobile number, in the right country.")


def test_resend_counts_down_then_sends_a_new_code_that_signs_in(window_in, stack):
    user = window_in("en-US", "415 555 0126")
    user.page.clock.install()  # the page's own clock, moved on instead of waiting 30 s
    user.request_code()
    countdown = user.page.get_by_test_id("resend-wait")
    expect(countdown).to_have_text(re.compile(r"Resend code in \d+ s"))
    expect(user.page.get_by_role("button", name="Resend code")).to_have_count(0)

    user.page.clock.fast_forward(RESEND_AFTER)
    user.page.get_by_role("button", name="Resend code").click()

    expect(user.page.get_by_text("We sent a new code to +1 415 555 0126.")).to_be_visible()
    expect(countdown).to_be_visible()  # counting down again
    _, newest = _codes_sent(stack, "+14155550126", count=2)
    expect(user.page.get_by_test_id("dev-code").locator("code")).to_have_text(newest)
    user.page.get_by_role("button", name="Use it").click()
    user.page.get_by_role("button", name="Sign in").click()
    user.expect_connected()


def test_wrong_codes_say_the_attempts_left_until_a_new_code_is_needed(window_in, stack):
    user = window_in("en-US", "415 555 0127")
    user.page.clock.install()
    user.request_code()
    right = user.page.get_by_test_id("dev-code").locator("code").inner_text()
    wrong = "000000" if right != "000000" else "111111"
    alert = user.page.get_by_role("alert")
    for said in ["4 attempts left.", "3 attempts left.", "2 attempts left.", "1 attempt left."]:
        _enter_code(user, wrong)
        expect(alert).to_have_text(f"That code is not right. {said}")
    _enter_code(user, wrong)
    expect(alert).to_have_text(
        "That code is not right, and it was the last try. Ask for a new code.")
    _enter_code(user, right)  # too late: the challenge is spent
    expect(alert).to_have_text("That code has expired or was already used. Ask for a new code.")

    user.page.clock.fast_forward(RESEND_AFTER)
    user.page.get_by_role("button", name="Resend code").click()
    _, newest = _codes_sent(stack, "+14155550127", count=2)
    expect(user.page.get_by_test_id("dev-code").locator("code")).to_have_text(newest)
    _enter_code(user, newest)
    user.expect_connected()


def test_a_rate_limited_resend_says_when_to_ask_again(window_in, stack):
    user = window_in("en-US", "415 555 0128")
    user.page.clock.install()
    user.request_code()
    countdown = user.page.get_by_test_id("resend-wait")
    for sent in (2, 3):  # the server allows three codes per number and network per 10 minutes
        user.page.clock.fast_forward(RESEND_AFTER)
        user.page.get_by_role("button", name="Resend code").click()
        _codes_sent(stack, "+14155550128", count=sent)
        # the page has the reply (its countdown starts again) before its clock is moved on
        expect(countdown).to_be_visible()
    user.page.clock.fast_forward(RESEND_AFTER)
    user.page.get_by_role("button", name="Resend code").click()

    expect(user.page.get_by_role("alert")).to_have_text(
        re.compile(r"Too many codes asked for\. You can ask for another in \d+ min\."))
    expect(countdown).to_have_text(re.compile(r"Resend code in \d+ min"))
    assert len(stack.outbox("+14155550128")) == 3


def _enter_code(user: WebUser, code: str) -> None:
    user.page.get_by_label("Code", exact=True).fill(code)
    user.page.get_by_role("button", name="Sign in").click()


def _codes_sent(stack, phone: str, *, count: int) -> list[str]:
    """The codes in the outbox, oldest first, once there are `count` of them."""
    for _ in range(50):
        codes = [message["code"] for message in reversed(stack.outbox(phone))]
        if len(codes) >= count:
            return codes
        time.sleep(0.1)
    raise AssertionError(f"{phone} was sent {len(codes)} codes, not {count}")
