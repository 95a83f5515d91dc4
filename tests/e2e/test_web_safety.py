"""Consent and blocking in the web client, in headless Chromium against the local stack: a chat
from someone new waits under "Message requests" and tells them nothing about me until I
accept; a person I block is listed in Settings, cannot reach me, and can be unblocked there."""

from __future__ import annotations

from playwright.sync_api import expect

ALICE, BOB, CAROL = "+14155550101", "+14155550102", "+14155550103"
SYNC_WAIT_MS = 15_000


def test_a_chat_from_someone_new_waits_as_a_request_and_reveals_nothing_until_accepted(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    bob.set_display_name("Bob Builder")

    alice.start_chat(BOB)
    alice.send("hi bob, it's alice")
    expect(alice.bodies).to_have_text(["hi bob, it's alice"], timeout=SYNC_WAIT_MS)

    request = bob.requests.get_by_test_id("conversation").filter(has_text=ALICE)
    expect(request).to_contain_text("hi bob, it's alice", timeout=SYNC_WAIT_MS)
    expect(bob.chats).to_have_count(0)
    # Bob is online, but until he accepts Alice learns nothing about him: no presence, no name
    # and no read receipt, even once he has opened her message.
    bob.page.get_by_role("button", name=f"Accept request from {ALICE}").wait_for()
    request.click()
    expect(bob.bodies).to_have_text(["hi bob, it's alice"])
    expect(bob.page.get_by_role("region", name="Message request")).to_contain_text("wants to chat")
    alice.page.wait_for_timeout(1_000)  # time for a leak to show up, if one were coming
    expect(alice.presence).to_have_text("")
    expect(alice.page.get_by_role("heading", level=2)).to_have_text(BOB)
    expect(alice.page.get_by_test_id("receipt")).not_to_have_text("read")

    bob.page.get_by_role("button", name="Accept", exact=True).click()
    expect(bob.page.get_by_role("region", name="Message request")).to_have_count(0)
    expect(bob.requests).to_have_count(0)
    expect(bob.chats.get_by_test_id("conversation")).to_contain_text(ALICE)

    expect(alice.presence).to_have_text("online", timeout=SYNC_WAIT_MS)
    expect(alice.page.get_by_role("heading", level=2)).to_have_text("Bob Builder",
                                                                    timeout=SYNC_WAIT_MS)
    bob.send("hello alice")
    expect(alice.bodies).to_have_text(["hi bob, it's alice", "hello alice"], timeout=SYNC_WAIT_MS)


def test_replying_to_a_request_accepts_it(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.send("are you free later?")
    bob.requests.get_by_test_id("conversation").filter(has_text=ALICE).click()
    bob.send("yes!")  # accepted once the server says sent
    expect(bob.requests).to_have_count(0, timeout=SYNC_WAIT_MS)
    expect(bob.page.get_by_role("region", name="Message request")).to_have_count(0)
    expect(alice.bodies).to_have_text(["are you free later?", "yes!"], timeout=SYNC_WAIT_MS)
    expect(alice.presence).to_have_text("online", timeout=SYNC_WAIT_MS)


def test_declining_and_blocking_lists_them_in_settings_and_their_messages_never_arrive(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.send("buy my crypto course")
    expect(bob.requests).to_contain_text("buy my crypto course", timeout=SYNC_WAIT_MS)

    bob.page.get_by_role("button", name=f"Block {ALICE}").click()
    expect(bob.requests).to_have_count(0)
    expect(bob.page.get_by_test_id("conversation")).to_have_count(0)

    alice.send("hello?? reply")
    expect(alice.pending).to_contain_text("Not delivered", timeout=SYNC_WAIT_MS)
    bob.page.wait_for_timeout(1_000)  # time for the message to show up, if it were coming
    expect(bob.page.get_by_test_id("conversation")).to_have_count(0)
    expect(bob.page.get_by_text("hello?? reply")).to_have_count(0)
    expect(bob.page).to_have_title("Ephemera")

    bob.open_settings()
    expect(bob.blocked_people).to_have_count(1)
    expect(bob.blocked_people).to_contain_text(ALICE)
    bob.page.get_by_role("button", name=f"Unblock {ALICE}").click()
    expect(bob.blocked_people).to_have_count(0)
    expect(bob.page.get_by_text("You haven't blocked anyone.")).to_be_visible()


def test_blocking_from_a_chat_hides_them_until_unblocked_in_settings(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.send("hi")
    bob.requests.get_by_test_id("conversation").filter(has_text=ALICE).click()
    bob.send("hi alice")  # accepts
    expect(alice.bodies).to_have_text(["hi", "hi alice"], timeout=SYNC_WAIT_MS)

    bob.page.get_by_role("button", name=f"Block {ALICE}").click()
    expect(bob.page.get_by_role("region", name="Blocked")).to_contain_text(f"You blocked {ALICE}")
    expect(bob.bodies).to_have_text(["hi alice"])  # hers are gone from the screen, mine stay
    expect(bob.page.get_by_label("Message", exact=True)).to_have_count(0)

    alice.send("why did you block me")
    expect(alice.pending).to_contain_text("Not delivered", timeout=SYNC_WAIT_MS)
    bob.page.wait_for_timeout(1_000)
    expect(bob.page.get_by_text("why did you block me")).to_have_count(0)

    bob.open_settings()
    bob.page.get_by_role("button", name=f"Unblock {ALICE}").click()
    expect(bob.blocked_people).to_have_count(0)
    bob.close_settings()
    bob.open_chat(ALICE)
    expect(bob.bodies).to_have_text(["hi", "hi alice"], timeout=SYNC_WAIT_MS)
    bob.send("sorry, unblocked you")
    expect(alice.messages.last).to_contain_text("sorry, unblocked you", timeout=SYNC_WAIT_MS)


def test_with_message_requests_off_a_new_chat_goes_straight_to_the_chats(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    bob.open_settings()
    toggle = bob.page.get_by_role("checkbox", name="Message requests")
    expect(toggle).to_be_checked()
    toggle.uncheck()
    expect(toggle).not_to_be_checked()
    explanation = bob.page.get_by_text("anyone who has your number can message you directly")
    expect(explanation).to_be_visible()
    bob.close_settings()

    alice.start_chat(BOB)
    alice.send("straight in")
    expect(bob.chats.get_by_test_id("conversation")).to_contain_text("straight in",
                                                                      timeout=SYNC_WAIT_MS)
    expect(bob.requests).to_have_count(0)
    expect(alice.presence).to_have_text("online", timeout=SYNC_WAIT_MS)


def test_with_read_receipts_off_neither_side_sees_read(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    bob.open_settings()
    bob.page.get_by_role("checkbox", name="Read receipts").uncheck()
    expect(bob.page.get_by_role("checkbox", name="Read receipts")).not_to_be_checked()
    bob.close_settings()

    alice.start_chat(BOB)
    alice.send("did you read this?")
    bob.requests.get_by_test_id("conversation").filter(has_text=ALICE).click()
    bob.send("I did")  # accepts, and reads hers
    expect(alice.messages.last).to_contain_text("I did", timeout=SYNC_WAIT_MS)
    expect(alice.page.get_by_test_id("receipt")).to_have_text("delivered", timeout=SYNC_WAIT_MS)
    expect(bob.page.get_by_test_id("receipt")).to_have_text("delivered", timeout=SYNC_WAIT_MS)
    bob.page.wait_for_timeout(1_000)  # time for a read receipt to arrive, if one were coming
    expect(alice.page.get_by_test_id("receipt")).to_have_text("delivered")
    expect(bob.page.get_by_test_id("receipt")).to_have_text("delivered")
