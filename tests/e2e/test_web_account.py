"""Unsend, "Download my data" and "Delete account" in the web client, in headless Chromium
against the local stack: a message I unsend disappears in the other person's window too; my
export holds my phone and the messages I still have; deleting my account with the texted code
signs me out, and the other person keeps the chat without my messages."""

from __future__ import annotations

import re
from datetime import date

from playwright.sync_api import expect

ALICE, BOB = "+14155550101", "+14155550102"
SYNC_WAIT_MS = 15_000


def chatting(open_window):
    """Alice and Bob, signed in, in a 1:1 chat Bob has accepted, each with it open."""
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.send("hello bob")
    bob.accept_request(ALICE)
    expect(bob.bodies).to_have_text(["hello bob"], timeout=SYNC_WAIT_MS)
    return alice, bob


def test_a_message_i_unsend_disappears_in_both_windows(open_window):
    alice, bob = chatting(open_window)
    alice.send("this one was a mistake")
    expect(bob.bodies).to_have_text(["hello bob", "this one was a mistake"], timeout=SYNC_WAIT_MS)
    expect(alice.page.get_by_test_id("receipt")).to_have_count(2, timeout=SYNC_WAIT_MS)

    # Bob's messages carry no unsend for Alice, and Alice's own do
    bob.send("hi alice")
    expect(alice.bodies).to_have_text(["hello bob", "this one was a mistake", "hi alice"],
                                      timeout=SYNC_WAIT_MS)
    theirs = alice.messages.filter(has_text="hi alice")
    theirs.hover()
    expect(theirs.get_by_role("button", name="Message actions")).to_have_count(0)

    alice.unsend("this one was a mistake")
    expect(alice.bodies).to_have_text(["hello bob", "hi alice"], timeout=SYNC_WAIT_MS)
    expect(bob.bodies).to_have_text(["hello bob", "hi alice"], timeout=SYNC_WAIT_MS)
    expect(bob.page.get_by_text("this one was a mistake")).to_have_count(0)
    expect(alice.page.get_by_test_id("unsend-refused")).to_have_count(0)


def test_unsend_lowers_the_unread_count_and_the_preview_in_the_other_window(open_window):
    alice, bob = chatting(open_window)
    bob.open_settings()  # the chat is not on Bob's screen: what arrives stays unread
    alice.send("second")
    alice.send("third, to take back")
    chat = bob.conversation(ALICE)
    expect(chat.get_by_test_id("unread")).to_have_text("2", timeout=SYNC_WAIT_MS)
    expect(chat).to_contain_text("third, to take back")

    alice.unsend("third, to take back")

    expect(chat.get_by_test_id("unread")).to_have_text("1", timeout=SYNC_WAIT_MS)
    expect(chat).to_contain_text("second")
    expect(chat).not_to_contain_text("third, to take back")


def test_download_my_data_holds_my_phone_and_the_messages_i_still_have(open_window):
    alice, bob = chatting(open_window)
    alice.send("kept for the export")
    alice.send("unsent before the export")
    expect(bob.bodies).to_have_count(3, timeout=SYNC_WAIT_MS)
    alice.unsend("unsent before the export")
    expect(alice.bodies).to_have_text(["hello bob", "kept for the export"], timeout=SYNC_WAIT_MS)

    name, data = alice.download_my_data()

    assert re.fullmatch(r"ephemera-export-\d{4}-\d{2}-\d{2}\.json", name)
    assert name == f"ephemera-export-{date.today().isoformat()}.json"
    assert data["profile"]["phone"] == ALICE
    assert [m["body"] for m in data["messages"]] == ["hello bob", "kept for the export"]


def test_deleting_my_account_with_the_texted_code_signs_me_out(open_window, stack):
    alice, bob = chatting(open_window)
    alice.send("goodbye soon")
    expect(bob.bodies).to_have_text(["hello bob", "goodbye soon"], timeout=SYNC_WAIT_MS)
    sign_in_text = stack.outbox(ALICE)[0]

    form = alice.ask_to_delete_account()
    expect(form.get_by_test_id("resend-wait")).to_contain_text("Resend code in")
    deletion_text = stack.outbox(ALICE)[0]
    assert deletion_text != sign_in_text, "the deletion code is texted as a new message"
    code = deletion_text["code"]

    # a wrong code first: how many attempts are left, and still signed in
    alice.confirm_account_deletion("000000" if code != "000000" else "111111")
    expect(alice.page.get_by_role("alert")).to_contain_text("attempts left")
    expect(form).to_be_visible()

    alice.confirm_account_deletion(code)

    expect(alice.page.get_by_role("form", name="Sign in")).to_be_visible(timeout=SYNC_WAIT_MS)
    expect(alice.page.get_by_test_id("signed-out-notice")).to_have_text("Your account was deleted.")
    assert alice.page.evaluate("() => sessionStorage.getItem('ephemera.session')") is None

    # Bob keeps the chat; Alice's messages leave his open window at once, and stay gone
    expect(bob.page.get_by_test_id("message")).to_have_count(0, timeout=SYNC_WAIT_MS)
    bob.page.reload()
    expect(bob.page.get_by_test_id("conversation")).to_have_count(1, timeout=SYNC_WAIT_MS)
    bob.page.get_by_test_id("conversation").click()
    expect(bob.page.get_by_test_id("message")).to_have_count(0)
    expect(bob.page.get_by_text("goodbye soon")).to_have_count(0)

    # and Alice's number signs up again, as someone new with no chats
    alice.sign_in()
    expect(alice.page.get_by_test_id("conversation")).to_have_count(0)
