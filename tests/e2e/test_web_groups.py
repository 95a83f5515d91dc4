"""Groups in the web client, in headless Chromium against the local stack: the members panel
adds people, makes an admin, removes someone and leaves; every window sees the lines ("Alice
added Carol") and the member lists change; typing shows in the other windows; a new timer
shows at once, in the picker and as a line, and so does a new name."""

from __future__ import annotations

from playwright.sync_api import expect

ALICE, BOB, CAROL = "+14155550111", "+14155550112", "+14155550113"
NOBODY_YET = "+14155550119"  # no account: a pending member, so that two phones make a group
WAIT_MS = 15_000
# A typing hint goes stale after 6 s: a stop must show before that, or it did not count.
STOPS_WITHIN_MS = 4_000
TITLE = "Climbers"
NEW_TITLE = "Boulderers"


def expect_notice(user, text: str) -> None:
    expect(user.notices.filter(has_text=text)).to_have_count(1, timeout=WAIT_MS)


def accept_group(user) -> None:
    """The group waits as a request (its starter is new to them): open it and accept."""
    request = user.requests.get_by_test_id("conversation").filter(has_text=TITLE)
    expect(request).to_be_visible(timeout=WAIT_MS)
    request.click()
    user.page.get_by_role("button", name="Accept", exact=True).click()
    expect(user.requests).to_have_count(0, timeout=WAIT_MS)


def test_a_group_is_managed_from_the_members_panel_and_everyone_sees_it(open_window):
    alice, bob, carol = (open_window(phone).sign_in() for phone in (ALICE, BOB, CAROL))
    for user, name in ((alice, "Alice"), (bob, "Bob"), (carol, "Carol")):
        user.set_display_name(name)

    alice.start_chat(BOB, NOBODY_YET, title=TITLE)
    alice.send("welcome to the group")
    accept_group(bob)
    expect(bob.bodies).to_have_text(["welcome to the group"], timeout=WAIT_MS)

    # the owner adds Carol from the panel: everyone gets a line, Carol gets the chat at once
    alice.open_members()
    expect(alice.member_row("Alice")).to_contain_text("Owner")
    expect(alice.member_rows).to_have_count(3)
    alice.add_members(CAROL)
    expect(alice.member_rows).to_have_count(4, timeout=WAIT_MS)
    expect_notice(alice, "You added")
    expect_notice(bob, "Alice added")
    accept_group(carol)
    expect(carol.page.get_by_role("heading", level=2)).to_have_text(TITLE)

    # the owner makes Bob an admin; Bob and Carol see it, and Bob's panel lists his role
    alice.member_row("Bob").get_by_role("button", name="Make admin").click()
    expect(alice.member_row("Bob")).to_contain_text("Admin", timeout=WAIT_MS)
    expect_notice(bob, "Alice made you an admin")
    expect_notice(carol, "Alice made Bob an admin")
    bob.open_members()
    expect(bob.member_row("Bob")).to_contain_text("Admin", timeout=WAIT_MS)
    expect(bob.add_people_field).to_be_visible()
    # an admin removes plain members only, never the owner
    expect(bob.member_row("Alice").get_by_role("button", name="Remove Alice")).to_have_count(0)
    bob.close_members()
    carol.open_members()  # a plain member: nobody to remove, nobody to add
    expect(carol.member_rows).to_have_count(4)
    expect(carol.add_people_field).to_have_count(0)
    expect(carol.members_panel.get_by_role("button", name="Remove")).to_have_count(0)
    carol.close_members()

    # a new timer: the line and the picker's value in every window at once
    alice.close_members()
    alice.ttl_picker.select_option("10")
    expect_notice(alice, "You set messages to expire after 10 seconds")
    expect_notice(bob, "Alice set messages to expire after 10 seconds")
    expect(bob.ttl_picker).to_have_value("10", timeout=WAIT_MS)
    expect(carol.ttl_picker).to_have_value("10", timeout=WAIT_MS)
    expect(carol.ttl_picker).to_be_disabled()  # a plain member: only owner and admins may

    # the owner renames the group from the panel
    alice.open_members()
    alice.members_panel.get_by_role("textbox", name="Group name").fill(NEW_TITLE)
    alice.members_panel.get_by_role("button", name="Rename").click()
    expect_notice(bob, f"Alice renamed the group to {NEW_TITLE}")
    expect(carol.page.get_by_role("heading", level=2)).to_have_text(NEW_TITLE, timeout=WAIT_MS)
    alice.close_members()

    # the admin removes Carol: her chat goes from her list, the others see the line
    bob.open_members()
    bob.member_row("Carol").get_by_role("button", name="Remove Carol").click()
    expect(bob.member_rows).to_have_count(3, timeout=WAIT_MS)
    expect_notice(alice, "Bob removed Carol")
    expect(carol.conversation(NEW_TITLE)).to_have_count(0, timeout=WAIT_MS)

    # Bob leaves: the chat leaves his list, Alice sees the line and one member left
    bob.close_members()
    bob.leave_group()
    expect(bob.conversation(NEW_TITLE)).to_have_count(0, timeout=WAIT_MS)
    expect(bob.page.get_by_role("status").filter(has_text=f"You left {NEW_TITLE}.")).to_be_visible()
    expect_notice(alice, "Bob left")
    alice.open_members()
    expect(alice.member_rows).to_have_count(2, timeout=WAIT_MS)


def keep_typing_until(line, text: str, *composers) -> None:
    """A typing hint is never queued: one sent while the typist's or the watcher's socket
    reconnects (this stack closes sockets idle for 3 s) is lost, as on a flaky network, and the
    next goes out with a later keystroke (at most one every 3 s). So type on, leaving the text
    as it was, until the watcher shows it."""
    for _ in range(4):
        try:
            expect(line).to_have_text(text, timeout=3_500)
            return
        except AssertionError:
            for composer in composers:
                composer.press("x")
                composer.press("Backspace")
    expect(line).to_have_text(text, timeout=WAIT_MS)


def test_typing_shows_in_the_other_windows_until_cleared_or_sent(open_window):
    alice, bob, carol = (open_window(phone).sign_in() for phone in (ALICE, BOB, CAROL))
    for user, name in ((alice, "Alice"), (bob, "Bob"), (carol, "Carol")):
        user.set_display_name(name)
    alice.start_chat(BOB, CAROL, title=TITLE)
    alice.send("who is coming?")
    accept_group(bob)
    accept_group(carol)

    # each check follows a keystroke: a typist idle for 5 s stops typing, as the client should
    bob_composer = bob.page.get_by_label("Message", exact=True)
    carol_composer = carol.page.get_by_label("Message", exact=True)
    bob_composer.press_sequentially("me", delay=50)
    keep_typing_until(alice.typing_line, "Bob is typing…", bob_composer)
    bob_composer.press("!")
    keep_typing_until(carol.typing_line, "Bob is typing…", bob_composer)
    expect(bob.typing_line).to_have_text("")  # never myself

    bob_composer.press("!")
    carol_composer.press_sequentially("me too", delay=50)
    keep_typing_until(alice.typing_line, "Bob and Carol are typing…", bob_composer,
                      carol_composer)

    carol_composer.press("!")
    bob_composer.fill("")  # cleared: Bob stops at once, well before his hint would go stale
    expect(alice.typing_line).not_to_contain_text("Bob", timeout=STOPS_WITHIN_MS)
    keep_typing_until(alice.typing_line, "Carol is typing…", carol_composer)
    carol_composer.press("Enter")  # sent: Carol stops too
    expect(alice.bodies).to_have_text(["who is coming?", "me too!"], timeout=WAIT_MS)
    expect(alice.typing_line).to_have_text("", timeout=WAIT_MS)
