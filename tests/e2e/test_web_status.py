"""Honest status in a real browser against the real local stack: the link says offline within
seconds when the socket is cut or stops answering, a message written then says it waits, a
rate-limited message says when it goes, and a message that arrives while the tab is hidden
shows a desktop notification."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import WebSocketRoute, expect

from tests.e2e.conftest import RunningStack
from tests.e2e.web_client import WebUser, browser_windows, cut_sockets_of

ALICE, BOB = "+14155550101", "+14155550102"
# The client's bound (web/src/socket.ts, client.ts): a ping or send unanswered for 5 s is a dead
# link, checked every half second (pings) or second (sends); a probe goes once the link has been
# quiet for 5 s. Plus a second of slack for a busy test machine.
DEAD_LINK_BOUND_MS = 7_000
QUIET_BEFORE_PROBE_MS = 5_500
ARRIVAL_WAIT_MS = 20_000
SOCKET_URL = re.compile(r"/ws\?ticket=")

# Headless Chromium shows no notification: the page's `Notification` records what it was asked
# to show, and the tab can be made to look hidden (`window.__hidden = true`).
NOTIFICATION_SPY = """
(() => {
  const Real = window.Notification;
  const shown = [];
  window.__notifications = shown;
  window.__hidden = false;
  function Spy(title, options) {
    shown.push({ title, body: (options && options.body) || "" });
    this.onclick = null;
    this.close = () => {};
    shown[shown.length - 1].note = this;
  }
  Object.defineProperty(Spy, "permission", { get: () => Real.permission });
  Spy.requestPermission = () => Real.requestPermission();
  window.Notification = Spy;
  Object.defineProperty(Document.prototype, "visibilityState", {
    get: () => (window.__hidden ? "hidden" : "visible"),
  });
  Object.defineProperty(Document.prototype, "hidden", { get: () => window.__hidden });
})();
"""


def test_the_status_says_offline_at_once_when_the_stack_cuts_the_socket_and_a_message_waits(
        open_window, stack, stack_db):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.send("before the tunnel")
    bob.accept_request(ALICE)

    alice.page.route("**/ws/ticket", lambda route: route.abort("internetdisconnected"))
    cut_sockets_of(alice, stack, stack_db)
    expect(_status(alice)).to_have_text("offline", timeout=DEAD_LINK_BOUND_MS)
    alice.send("written in the tunnel")
    expect(alice.pending).to_contain_text("Waiting for connection")
    expect(alice.page.get_by_test_id("waiting")).to_have_text("1 message waiting")

    alice.page.unroute("**/ws/ticket")
    alice.page.evaluate("() => window.dispatchEvent(new Event('online'))")
    alice.expect_connected()
    expect(bob.bodies).to_have_text(["before the tunnel", "written in the tunnel"],
                                    timeout=ARRIVAL_WAIT_MS)
    expect(alice.pending).to_have_count(0)
    expect(alice.page.get_by_test_id("waiting")).to_have_count(0)


def test_the_status_says_offline_within_seconds_when_the_socket_stops_answering(open_window):
    alice, bob = open_window(ALICE), open_window(BOB).sign_in()
    silence = _swallow_socket_frames(alice)
    alice.sign_in()
    alice.start_chat(BOB)
    alice.send("before the silence")
    bob.accept_request(ALICE)
    expect(bob.bodies).to_have_text(["before the silence"])

    # the socket stays open but nothing gets through, either way: no close event ever comes
    silence(True)
    alice.page.wait_for_timeout(QUIET_BEFORE_PROBE_MS)
    alice.page.get_by_label("Message", exact=True).fill("are you there")  # typing probes
    expect(_status(alice)).to_have_text("offline", timeout=DEAD_LINK_BOUND_MS)
    alice.page.get_by_label("Message", exact=True).press("Enter")
    expect(alice.pending).to_contain_text("Waiting for connection")
    # the sockets it opens meanwhile carry nothing either: it stays offline, not "online"
    alice.page.wait_for_timeout(QUIET_BEFORE_PROBE_MS)
    expect(_status(alice)).not_to_have_text("online")

    silence(False)
    # the next try gets through: the backoff is at most 15 s, and a try 5 s more
    expect(_status(alice)).to_have_text("online", timeout=25_000)
    expect(bob.bodies).to_have_text(["before the silence", "are you there"],
                                    timeout=ARRIVAL_WAIT_MS)
    expect(alice.pending).to_have_count(0)


def test_a_send_that_goes_unanswered_turns_the_status_offline_within_seconds(open_window):
    alice, bob = open_window(ALICE), open_window(BOB).sign_in()
    silence = _swallow_socket_frames(alice)
    alice.sign_in()
    alice.start_chat(BOB)
    silence(True)
    alice.send("into the void")  # sent at once: the link had just answered
    expect(_status(alice)).to_have_text("offline", timeout=DEAD_LINK_BOUND_MS)
    expect(alice.pending).to_contain_text("Waiting for connection")
    silence(False)
    bob.open_chat(ALICE)
    expect(bob.bodies).to_have_text(["into the void"], timeout=ARRIVAL_WAIT_MS)


def test_the_browsers_offline_event_turns_the_status_offline_and_online_brings_it_back(
        open_window):
    alice = open_window(ALICE).sign_in()
    alice.context.set_offline(True)
    expect(_status(alice)).to_have_text("offline", timeout=DEAD_LINK_BOUND_MS)
    alice.context.set_offline(False)
    alice.expect_connected()


def test_a_rate_limited_message_says_when_it_goes_then_goes(strict_window):
    alice, bob = strict_window(ALICE).sign_in(), strict_window(BOB).sign_in()
    alice.start_chat(BOB)
    written = [f"quick {n}" for n in range(6)]  # the limit is 3 sends per 5 s
    for text in written:
        alice.send(text)
    expect(alice.pending.first).to_contain_text(re.compile(r"Sending in \d+ s: slow down"))
    expect(alice.pending).to_have_count(0, timeout=60_000)
    expect(alice.bodies).to_have_text(written)
    bob.open_chat(ALICE)
    expect(bob.bodies).to_have_text(written)


def test_a_message_not_sent_offers_retry_and_discard_and_retry_sends_it_once(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.send("hi")
    bob.accept_request(ALICE)
    bob.page.get_by_role("button", name=f"Block {ALICE}").click()

    alice.send("refused while blocked")
    alice.send("discard me")
    refused, discarded = alice.pending.nth(0), alice.pending.nth(1)
    expect(refused).to_contain_text("Not delivered", timeout=ARRIVAL_WAIT_MS)
    expect(discarded).to_contain_text("Not delivered", timeout=ARRIVAL_WAIT_MS)
    discarded.get_by_role("button", name="Discard").click()
    expect(alice.pending).to_have_count(1)

    bob.open_settings()
    bob.page.get_by_role("button", name=f"Unblock {ALICE}").click()
    expect(bob.blocked_people).to_have_count(0)
    bob.close_settings()
    bob.open_chat(ALICE)

    alice.pending.get_by_role("button", name="Retry").click()
    expect(alice.pending).to_have_count(0, timeout=ARRIVAL_WAIT_MS)
    expect(alice.bodies).to_have_text(["hi", "refused while blocked"])
    expect(bob.bodies).to_have_text(["hi", "refused while blocked"], timeout=ARRIVAL_WAIT_MS)
    bob.page.wait_for_timeout(1_000)  # time for a duplicate to show up, if one were coming
    expect(bob.bodies).to_have_count(2)


def test_a_message_while_the_tab_is_hidden_notifies_and_says_only_new_message_with_previews_off(
        open_window):
    alice, bob = open_window(ALICE), open_window(BOB)
    alice.context.add_init_script(NOTIFICATION_SPY)
    alice.sign_in()
    bob.sign_in()
    alice.start_chat(BOB)
    alice.send("hello bob")
    bob.accept_request(ALICE)

    alice.open_settings()
    turn_on = alice.page.get_by_role("button", name="Turn on notifications")
    alice.context.grant_permissions(["notifications"])
    turn_on.click()  # asked for on a click, never on its own
    expect(alice.page.get_by_test_id("notifications-state")).to_contain_text("On")
    alice.close_settings()

    _hide(alice, True)
    bob.send("dinner at eight?")
    expect(alice.page).to_have_title("(1) Ephemera")
    _expect_notifications(alice, [{"title": BOB, "body": "dinner at eight?"}])

    _hide(alice, False)
    alice.open_settings()
    alice.page.get_by_label("Show message previews").uncheck()
    alice.close_settings()
    _hide(alice, True)
    bob.send("the secret plan")
    _expect_notifications(alice, [{"title": BOB, "body": "dinner at eight?"},
                                  {"title": "New message", "body": ""}])

    # clicking it opens that chat
    alice.page.evaluate("() => window.__notifications[1].note.onclick()")
    expect(alice.page.get_by_role("heading", level=2)).to_have_text(BOB)


def test_no_notification_while_the_tab_is_in_view(open_window):
    alice, bob = open_window(ALICE), open_window(BOB)
    alice.context.add_init_script(NOTIFICATION_SPY)
    alice.context.grant_permissions(["notifications"])
    alice.sign_in()
    bob.sign_in()
    alice.start_chat(BOB)
    alice.send("hello bob")
    bob.accept_request(ALICE)
    bob.send("you are looking at this")
    expect(alice.bodies).to_have_text(["hello bob", "you are looking at this"])
    assert alice.page.evaluate("() => window.__notifications.length") == 0


# --- helpers ------------------------------------------------------------------------------


def _status(user: WebUser):
    return user.page.get_by_test_id("connection-status")


def _swallow_socket_frames(user: WebUser) -> Callable[[bool], None]:
    """Routes the user's sockets through Playwright; the returned switch makes every frame, in
    both directions, vanish (the socket stays open: what a dead path looks like)."""
    swallowing = {"on": False}

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda frame: None if swallowing["on"] else server.send(frame))
        server.on_message(lambda frame: None if swallowing["on"] else ws.send(frame))

    user.page.route_web_socket(SOCKET_URL, route)

    def switch(on: bool) -> None:
        swallowing["on"] = on

    return switch


def _hide(user: WebUser, hidden: bool) -> None:
    user.page.evaluate("(hidden) => { window.__hidden = hidden;"
                       " document.dispatchEvent(new Event('visibilitychange')); }", hidden)


def _expect_notifications(user: WebUser, expected: list[dict[str, str]]) -> None:
    read = "() => window.__notifications.map(({ title, body }) => ({ title, body }))"
    user.page.wait_for_function("(n) => window.__notifications.length >= n", arg=len(expected))
    assert user.page.evaluate(read) == expected


@pytest.fixture
def strict_window(browser, fresh_database_url) -> Iterator[Callable[..., WebUser]]:
    """Windows on a stack of its own whose send limit is 3 messages per 5 s."""
    stack = RunningStack({"DATABASE_URL": fresh_database_url, "RATE_SEND_BURST_PER_USER": "3/5"})
    try:
        stack.wait_until_ready()
        with browser_windows(browser, stack.base_url) as open_window:
            yield open_window
    finally:
        stack.stop()
