"""`make screenshots`: the README's pictures, taken from the real client against the local stack
(the browser tests' fixtures). Three people chat a little, one-to-one and in a group, and the
desktop and phone screens are written to docs/screenshots/ in the light and dark schemes.

Not a test file (no `test_` prefix, so a plain `pytest` never collects it): only the Makefile
target runs it, by path."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.e2e import test_web_layout as layout
from tests.e2e.web_client import WebUser

open_sized = layout.open_sized  # the fixture: windows at a chosen size, closed after the run
DESKTOP, PHONE = layout.DESKTOP, layout.PHONE

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ALICE, BOB, CAROL = "+14155550151", "+14155550152", "+14155550153"
SYNC_WAIT_MS = 15_000
PHONE_SHARP = layout.Size("phone", {**PHONE.context, "device_scale_factor": 2})


def shoot(user: WebUser, name: str, scheme: str = "light") -> None:
    user.page.emulate_media(color_scheme=scheme)
    user.page.mouse.move(0, 0)  # no hover highlight
    user.page.evaluate("() => document.activeElement?.blur()")  # no focus ring, no caret
    user.page.screenshot(path=OUT / f"{name}.png", animations="disabled")


def signed_in(open_sized, phone: str, size, name: str) -> WebUser:
    user = open_sized(phone, size).sign_in()
    user.set_display_name(name)
    return user


def expect_last_message(user: WebUser, text: str) -> None:
    expect(user.bodies.last).to_have_text(text, timeout=SYNC_WAIT_MS)


def join(user: WebUser, name: str) -> None:
    """Opens the chat `name`, accepting it first if it came as a request."""
    chat = user.conversation(name)
    expect(chat).to_be_visible(timeout=SYNC_WAIT_MS)
    chat.click()
    accept = user.page.get_by_role("button", name="Accept", exact=True)
    if accept.is_visible():
        accept.click()


def test_take_the_screenshots(open_sized):
    OUT.mkdir(parents=True, exist_ok=True)
    alice = signed_in(open_sized, ALICE, DESKTOP, "Alice")
    bob = signed_in(open_sized, BOB, DESKTOP, "Bob")
    carol = signed_in(open_sized, CAROL, DESKTOP, "Carol")

    alice.start_chat(BOB)
    alice.send("Hi Bob! Are we still on for the climbing gym tomorrow? 🧗")
    bob.accept_request("Alice")
    bob.send("Yes! 6 pm works for me.")
    expect_last_message(alice, "Yes! 6 pm works for me.")
    alice.send("Great, I'll bring the chalk.")
    expect_last_message(bob, "Great, I'll bring the chalk.")
    bob.send("See you there 👋")
    expect_last_message(alice, "See you there 👋")

    alice.start_chat(BOB, CAROL, title="Weekend plans")
    alice.send("Picnic on Saturday? I can bring sandwiches 🥪")
    join(carol, "Weekend plans")
    carol.send("I'm in! I'll bring lemonade.")
    join(bob, "Weekend plans")
    bob.send("Count me in. Noon at the park?")
    expect_last_message(alice, "Count me in. Noon at the park?")

    alice.ttl_picker.select_option(str(7 * 86400))  # a line in every member's chat
    expect(bob.notices.last).to_have_text("Alice set messages to expire after 1 week")
    alice.open_members()
    shoot(alice, "desktop-group-members")
    alice.close_members()

    alice.conversation("See you there").click()
    shoot(alice, "desktop-chat")
    shoot(alice, "desktop-dark", "dark")

    on_phone = open_sized(ALICE, PHONE_SHARP).sign_in()
    expect(on_phone.conversation("Weekend plans")).to_be_visible()
    shoot(on_phone, "phone-list")
    shoot(on_phone, "phone-list-dark", "dark")
    on_phone.conversation("Weekend plans").tap()
    expect_last_message(on_phone, "Count me in. Noon at the park?")
    shoot(on_phone, "phone-chat")
    shoot(on_phone, "phone-chat-dark", "dark")
