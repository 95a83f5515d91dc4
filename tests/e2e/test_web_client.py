"""The web client in a real headless Chromium against the real local stack: what a person sees
when they sign in and chat from two browser windows."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.e2e.web_client import cut_sockets_of

ALICE, BOB, CAROL = "+14155550101", "+14155550102", "+14155550103"
SYNC_WAIT_MS = 15_000


def test_two_people_sign_in_and_chat_in_two_windows(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()

    alice.start_chat(BOB)
    alice.send("hello bob")
    expect(alice.bodies).to_have_text(["hello bob"], timeout=SYNC_WAIT_MS)

    chat = bob.conversation(ALICE)
    expect(chat).to_contain_text("hello bob")  # the list's preview, live
    expect(chat.get_by_test_id("unread")).to_have_text("1")
    expect(bob.page).to_have_title("(1) Ephemera")
    bob.accept_request(ALICE)  # a first message from someone new is a request
    expect(bob.messages.first).to_contain_text("hello bob")
    expect(chat.get_by_test_id("unread")).to_have_count(0)
    expect(bob.page).to_have_title("Ephemera")
    expect(alice.page.get_by_test_id("receipt")).to_have_text("read")
    expect(alice.page.get_by_test_id("presence")).to_have_text("online")

    bob.send("hi alice")
    expect(alice.messages.nth(1)).to_contain_text("hi alice")
    expect(bob.messages).to_have_count(2)
    expect(bob.page.get_by_test_id("receipt")).to_have_text("read")


def test_a_message_body_is_shown_as_text_and_never_run(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>'
    alice.start_chat(BOB)
    alice.send(hostile)
    bob.open_chat(ALICE)
    expect(bob.bodies).to_have_text([hostile])
    assert bob.page.evaluate("() => window.pwned") is None
    assert bob.page.locator(".messages img, .messages script").count() == 0


def test_the_local_login_screen_shows_the_code_the_console_sender_sent(open_window, stack):
    alice = open_window(ALICE)
    alice.request_code()
    expect(alice.page.get_by_test_id("dev-code")).to_contain_text(stack.outbox(ALICE)[0]["code"])


def test_a_wrong_code_says_how_many_attempts_are_left_and_the_right_one_still_works(open_window):
    alice = open_window(ALICE)
    alice.request_code()
    wrong = "000000" if _shown_code(alice) != "000000" else "111111"
    alice.page.get_by_label("Code", exact=True).fill(wrong)
    alice.page.get_by_role("button", name="Sign in").click()
    expect(alice.page.get_by_role("alert")).to_have_text("That code is not right. 4 attempts left.")
    alice.page.get_by_role("button", name="Use it").click()
    alice.page.get_by_role("button", name="Sign in").click()
    alice.expect_connected()


def test_a_message_written_offline_goes_once_when_the_connection_returns(open_window, stack,
                                                                         stack_db):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.send("before the tunnel")
    bob.open_chat(ALICE)
    expect(bob.messages).to_have_count(1)

    # The network drops: the stack cuts Alice's socket and no new ticket gets through.
    alice.page.route("**/ws/ticket", lambda route: route.abort("internetdisconnected"))
    cut_sockets_of(alice, stack, stack_db)
    expect(alice.page.get_by_test_id("connection-status")).not_to_have_text("online")
    alice.send("written in the tunnel")
    expect(alice.pending).to_have_count(1)
    expect(alice.pending).to_contain_text("Waiting for connection")
    bob.page.wait_for_timeout(500)
    expect(bob.messages).to_have_count(1)

    alice.page.unroute("**/ws/ticket")
    alice.page.evaluate("() => window.dispatchEvent(new Event('online'))")
    alice.expect_connected()
    expect(bob.messages.nth(1)).to_contain_text("written in the tunnel", timeout=SYNC_WAIT_MS)
    expect(alice.pending).to_have_count(0)
    expect(alice.messages).to_have_count(2)
    bob.page.wait_for_timeout(1_000)  # time for a duplicate to show up, if one were coming
    expect(bob.messages).to_have_count(2)


def test_a_reload_keeps_the_session_and_brings_the_messages_back(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.send("still here after a reload?")
    expect(bob.conversation(ALICE)).to_contain_text("still here")

    bob.page.reload()
    bob.expect_connected()
    bob.open_chat(ALICE)
    expect(bob.bodies).to_have_text(["still here after a reload?"])


def test_a_message_disappears_when_it_expires_and_is_deleted_soon_after(open_window, stack_db):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.page.get_by_label("Messages expire after").select_option(label="10 seconds")
    expect(alice.page.get_by_label("Messages expire after")).to_have_value("10")
    alice.send("this will self-destruct")
    bob.open_chat(ALICE)
    expect(bob.messages).to_have_count(1)
    expect(bob.page.get_by_test_id("expires-in")).to_contain_text("expires in")

    for person in (alice, bob):
        expect(person.messages).to_have_count(0, timeout=15_000)
    expect(bob.conversation(ALICE)).not_to_contain_text("self-destruct")
    _wait_until(lambda: _count_messages(stack_db) == 0, timeout_s=10)


def test_the_other_person_shows_offline_when_their_last_window_closes(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.send("are you there?")
    bob.accept_request(ALICE)  # until then Alice may not see whether Bob is online
    expect(alice.page.get_by_test_id("presence")).to_have_text("online")
    bob.page.close()
    expect(alice.page.get_by_test_id("presence")).to_contain_text("last seen", timeout=10_000)


def test_a_group_shows_its_title_and_who_wrote_each_message(open_window):
    alice, bob, carol = (open_window(p).sign_in() for p in (ALICE, BOB, CAROL))
    alice.start_chat(BOB, CAROL, title="Trip")
    alice.send("who brings the tent?")
    for person in (bob, carol):
        person.accept_request("Trip")
        expect(person.messages.first).to_contain_text(ALICE)
        expect(person.messages.first).to_contain_text("who brings the tent?")
    expect(alice.page.get_by_test_id("presence")).to_have_text("3 members, 2 others online")


def test_signing_out_returns_to_the_login_and_revokes_the_device(open_window, stack):
    alice = open_window(ALICE).sign_in()
    token = alice.session_storage()["accessToken"]
    alice.page.get_by_role("button", name="Sign out").click()
    expect(alice.page.get_by_label("Phone number", exact=True)).to_be_visible()
    assert alice.page.evaluate("() => sessionStorage.getItem('ephemera.session')") is None
    status, _, _ = stack.request("GET", "/devices", token=token)
    assert status == 401


def test_an_expired_access_token_is_refreshed_without_signing_out(open_window):
    alice = open_window(ALICE).sign_in()
    before = alice.session_storage()
    _replace_stored_tokens(alice, access_token="expired.or.forged")
    alice.page.reload()
    alice.expect_connected()
    after = alice.session_storage()
    assert after["refreshToken"] != before["refreshToken"]  # rotated
    assert after["deviceId"] == before["deviceId"]


def test_a_refused_refresh_returns_to_the_login_screen(open_window):
    alice = open_window(ALICE).sign_in()
    _replace_stored_tokens(alice, access_token="expired.or.forged", refresh_token="revoked")
    alice.page.reload()
    expect(alice.page.get_by_label("Phone number", exact=True)).to_be_visible()
    assert alice.page.evaluate("() => sessionStorage.getItem('ephemera.session')") is None


# --- helpers ------------------------------------------------------------------------------


def _shown_code(user) -> str:
    return user.page.get_by_test_id("dev-code").locator("code").inner_text()


def _replace_stored_tokens(user, **tokens: str) -> None:
    stored = {**user.session_storage(), **{
        {"access_token": "accessToken", "refresh_token": "refreshToken"}[k]: v
        for k, v in tokens.items()}}
    user.page.evaluate("(s) => sessionStorage.setItem('ephemera.session', JSON.stringify(s))",
                       stored)



def _count_messages(db) -> int:
    def count(txn):
        txn.execute("SELECT COUNT(*) AS n FROM messages")
        return txn.fetchone()["n"]

    return db.run_read("t", count)


def _wait_until(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
