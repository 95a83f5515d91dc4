"""The web client's layout in headless Chromium at a phone's size (390 × 844, touch) and a
desktop's (1280 × 800): one pane at a time on the phone, two on the desktop, nothing covering
anything it should not, the open chat kept over a reload, and the dark scheme."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, expect

from tests.e2e.web_client import WebUser, browser_windows

ALICE, BOB, CAROL = "+14155550141", "+14155550142", "+14155550143"
SYNC_WAIT_MS = 15_000


@dataclass(frozen=True)
class Size:
    name: str
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def phone(self) -> bool:
        return self.context.get("is_mobile", False)


PHONE = Size("phone", {"viewport": {"width": 390, "height": 844}, "is_mobile": True,
                       "has_touch": True})
DESKTOP = Size("desktop", {"viewport": {"width": 1280, "height": 800}})
SIZES = [pytest.param(PHONE, id="390x844"), pytest.param(DESKTOP, id="1280x800")]
TAP_TARGET_PX = 44

# Each visible control whose centre another element covers, that sits off screen after scrolling
# it into view, or that sticks out at the side: where a click or tap would land elsewhere.
COVERED_CONTROLS_JS = """
() => {
  const describe = (el) => {
    const name = el.getAttribute("aria-label") || el.textContent.trim().slice(0, 30);
    const classes = el.className ? "." + String(el.className).split(" ").join(".") : "";
    return `<${el.tagName.toLowerCase()}${classes}> "${name}"`;
  };
  const seen = { visibilityProperty: true, opacityProperty: true };
  const offenders = [];
  for (const el of document.querySelectorAll("button, a[href], input, select, textarea, summary")) {
    if (el.type === "hidden" || !el.checkVisibility(seen)) continue;
    el.scrollIntoView({ block: "nearest", inline: "nearest" });
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || el.closest(".visually-hidden")) continue;
    if (box.left < -0.5 || box.right > document.documentElement.clientWidth + 0.5) {
      offenders.push(`${describe(el)} is cut off at the edge of the screen`);
      continue;
    }
    const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    if (hit && (hit === el || el.contains(hit))) continue;
    const by = hit ? describe(hit) : "nothing: it is off screen";
    offenders.push(`${describe(el)} is covered by ${by}`);
  }
  return offenders;
}
"""

# Each visible control smaller than a fingertip (a checkbox counts through its label).
SMALL_TARGETS_JS = """
(minimum) => {
  const small = [];
  const boxes = "input[type=checkbox], input[type=radio]";
  const controls = "button, a[href], input, select, textarea, summary, label";
  for (const el of document.querySelectorAll(controls)) {
    if (el.type === "hidden" || el.matches(boxes)) continue;
    if (el.tagName === "LABEL" && !el.querySelector(boxes)) continue;
    if (!el.checkVisibility({ visibilityProperty: true })) continue;
    if (el.closest(".visually-hidden")) continue;
    const box = el.getBoundingClientRect();
    if (box.width < minimum - 0.5 || box.height < minimum - 0.5) {
      const size = `${Math.round(box.width)}×${Math.round(box.height)}`;
      const name = el.textContent.trim().slice(0, 30);
      small.push(`<${el.tagName.toLowerCase()}> "${name}" is ${size}`);
    }
  }
  return small;
}
"""


def covered_controls(user: WebUser) -> list[str]:
    return user.page.evaluate(COVERED_CONTROLS_JS)


def expect_every_control_reachable(user: WebUser, size: Size, screen: str) -> None:
    """Nothing covers a control on this screen; on a phone, each is big enough to tap."""
    assert covered_controls(user) == [], f"{size.name}, {screen}: covered controls"
    if size.phone:
        small = user.page.evaluate(SMALL_TARGETS_JS, TAP_TARGET_PX)
        assert small == [], f"{screen}: targets under 44 px"


@pytest.fixture
def open_sized(browser: Browser, stack) -> Iterator[Callable[..., WebUser]]:
    """`open_window` at a chosen size (and colour scheme)."""
    with browser_windows(browser, stack.base_url) as open_window:
        yield lambda phone, size, **context: open_window(phone, **size.context, **context)


def press(user: WebUser, size: Size, target: Locator) -> None:
    """A tap on a phone, a click on a desktop: either fails if something else would get it."""
    if size.phone:
        target.tap()
    else:
        target.click()


def back_to_list(user: WebUser, size: Size) -> None:
    """On a phone, Back shows the list; on a desktop the list never went away."""
    if size.phone:
        press(user, size, user.page.get_by_role("button", name="Back"))
    expect(user.chats).to_be_visible()


def heading(user: WebUser) -> Locator:
    return user.page.get_by_role("heading", level=2)


@pytest.mark.parametrize("size", SIZES)
def test_sign_in_chat_go_back_open_another_and_sign_out_with_nothing_covered(open_sized, size):
    bob, carol = open_sized(BOB, DESKTOP).sign_in(), open_sized(CAROL, DESKTOP).sign_in()
    alice = open_sized(ALICE, size)
    alice.request_code()
    expect_every_control_reachable(alice, size, "sign-in")
    alice.page.get_by_role("button", name="Use it").click()
    press(alice, size, alice.page.get_by_role("button", name="Sign in"))
    alice.expect_connected()
    expect_every_control_reachable(alice, size, "empty list")

    press(alice, size, alice.page.get_by_role("button", name="New chat"))
    expect(heading(alice)).to_have_text("New chat")
    the_list = alice.page.get_by_role("complementary")
    expect(the_list).to_be_visible(visible=not size.phone)
    expect_every_control_reachable(alice, size, "new chat")
    alice.page.get_by_label("Phone numbers").fill(BOB)
    press(alice, size, alice.page.get_by_role("button", name="Start chat"))
    expect(heading(alice)).to_have_text(BOB)
    alice.send("hello bob")
    expect(alice.bodies).to_have_text(["hello bob"], timeout=SYNC_WAIT_MS)
    expect(alice.page.get_by_label("Message", exact=True)).to_be_in_viewport()
    expect_every_control_reachable(alice, size, "chat")

    bob.accept_request(ALICE)
    bob.send("hi alice")
    expect(alice.bodies).to_have_text(["hello bob", "hi alice"])

    back_to_list(alice, size)
    expect(alice.conversation(BOB)).to_contain_text("hi alice")
    expect_every_control_reachable(alice, size, "list")
    alice.start_chat(CAROL, BOB, title="Climbing")
    alice.send("hello both")
    expect(carol.conversation("Climbing")).to_contain_text("hello both", timeout=SYNC_WAIT_MS)
    expect_every_control_reachable(alice, size, "group chat")

    back_to_list(alice, size)
    press(alice, size, alice.conversation(BOB))
    expect(heading(alice)).to_have_text(BOB)
    expect(alice.bodies).to_have_text(["hello bob", "hi alice"])

    back_to_list(alice, size)
    press(alice, size, alice.page.get_by_role("button", name="Settings", exact=True))
    expect(heading(alice)).to_have_text("Settings")
    expect(alice.page.get_by_label("Display name", exact=True)).to_be_visible()
    expect_every_control_reachable(alice, size, "settings")

    back_to_list(alice, size)
    press(alice, size, alice.page.get_by_role("button", name="Sign out"))
    expect(alice.page.get_by_label("Phone number", exact=True)).to_be_visible()


def test_a_phone_shows_one_pane_at_a_time_and_a_desktop_two(open_sized):
    on_phone, on_desktop = open_sized(ALICE, PHONE).sign_in(), open_sized(BOB, DESKTOP).sign_in()
    on_phone.start_chat(BOB)
    expect(on_phone.chats).to_be_hidden()
    expect(on_phone.page.get_by_role("button", name="Back")).to_be_visible()
    on_desktop.start_chat(ALICE)
    expect(on_desktop.chats).to_be_visible()
    expect(on_desktop.page.get_by_role("button", name="Back")).to_be_hidden()
    expect(on_desktop.page.get_by_role("button", name="New chat")).to_be_visible()


def test_the_composer_stays_on_screen_under_a_long_conversation_on_a_phone(open_sized):
    alice = open_sized(ALICE, PHONE).sign_in()
    alice.start_chat(BOB)
    for n in range(12):
        alice.send(f"line {n}\nand another line")
    expect(alice.bodies).to_have_count(12, timeout=SYNC_WAIT_MS)
    composer = alice.page.get_by_label("Message", exact=True)
    expect(composer).to_be_in_viewport()
    expect(heading(alice)).to_be_in_viewport()
    scroll = alice.page.evaluate("() => document.scrollingElement.scrollHeight - innerHeight")
    assert scroll <= 0, "the page itself scrolls: only the message list should"


@pytest.mark.parametrize("size", SIZES)
def test_the_open_chat_is_open_again_after_a_reload(open_sized, size):
    alice = open_sized(ALICE, size).sign_in()
    alice.start_chat(BOB)
    alice.send("still here")
    expect(alice.bodies).to_have_text(["still here"], timeout=SYNC_WAIT_MS)

    alice.page.reload()
    expect(heading(alice)).to_have_text(BOB)
    expect(alice.bodies).to_have_text(["still here"])
    if size.phone:
        expect(alice.chats).to_be_hidden()
        back_to_list(alice, size)
        alice.page.reload()
        expect(alice.chats).to_be_visible()
        expect(heading(alice)).to_be_hidden()


def test_settings_stay_open_over_a_reload(open_sized):
    alice = open_sized(ALICE, PHONE).sign_in()
    alice.page.get_by_role("button", name="Settings", exact=True).tap()
    alice.page.reload()
    expect(heading(alice)).to_have_text("Settings")


def test_a_reload_in_a_chat_that_is_gone_shows_the_list(open_sized):
    alice = open_sized(ALICE, PHONE).sign_in()
    alice.page.evaluate("""() => sessionStorage.setItem("ephemera.pane",
        JSON.stringify({ kind: "chat", id: "no-such-chat" }))""")
    alice.page.reload()
    expect(alice.page.get_by_text("No conversations yet.")).to_be_visible()
    expect(alice.page.get_by_role("button", name="New chat")).to_be_visible()


def luminance(css_colour: str) -> float:
    """WCAG relative luminance of an `rgb(r, g, b)` computed colour."""
    channels = [int(part) / 255 for part in css_colour.split("(")[1].split(")")[0].split(",")[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def background_of(user: WebUser, selector: str) -> str:
    return user.page.eval_on_selector(selector, "el => getComputedStyle(el).backgroundColor")


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_the_background_follows_the_colour_scheme(open_sized, scheme):
    alice = open_sized(ALICE, DESKTOP, color_scheme=scheme)
    alice.request_code()
    dark = scheme == "dark"
    assert (luminance(background_of(alice, "body")) < 0.05) == dark
    alice.page.get_by_role("button", name="Use it").click()
    alice.page.get_by_role("button", name="Sign in").click()
    alice.expect_connected()
    assert (luminance(background_of(alice, ".sidebar")) < 0.05) == dark
    text = alice.page.eval_on_selector(".me", "el => getComputedStyle(el).color")
    assert (luminance(text) > 0.5) == dark


def test_the_covered_controls_check_finds_a_control_under_an_overlay(open_sized):
    alice = open_sized(ALICE, PHONE)
    alice.request_code()
    alice.page.evaluate("""() => {
        const cover = document.createElement("div");
        cover.style.cssText = "position: fixed; inset: 0; background: transparent";
        document.body.append(cover);
    }""")
    offenders = covered_controls(alice)
    assert any('"Sign in" is covered by <div>' in offender for offender in offenders), offenders


def test_the_browsers_back_closes_the_chat_on_a_phone_and_stays_in_the_app(open_sized):
    alice = open_sized(ALICE, PHONE).sign_in()
    alice.start_chat(BOB)
    alice.page.go_back()
    expect(alice.chats).to_be_visible()
    expect(alice.conversation(BOB)).to_be_visible()
    alice.expect_connected()

    alice.conversation(BOB).tap()
    alice.page.get_by_role("button", name="Back").tap()
    expect(alice.chats).to_be_visible()
    alice.page.get_by_role("button", name="Settings", exact=True).tap()
    alice.page.go_back()  # the on-screen Back used up its entry: this one closes settings
    expect(alice.chats).to_be_visible()
    alice.expect_connected()


def test_a_phone_opens_a_chat_without_the_keyboard_and_back_returns_focus_to_it(open_sized):
    alice = open_sized(ALICE, PHONE).sign_in()
    alice.start_chat(BOB)
    alice.page.get_by_role("button", name="Back").tap()
    alice.conversation(BOB).tap()
    expect(alice.page.get_by_label("Message", exact=True)).not_to_be_focused()
    alice.page.get_by_role("button", name="Back").tap()
    expect(alice.conversation(BOB)).to_be_focused()


def test_a_desktop_opens_a_chat_with_the_cursor_in_the_composer(open_sized):
    alice = open_sized(ALICE, DESKTOP).sign_in()
    alice.start_chat(BOB)
    expect(alice.page.get_by_label("Message", exact=True)).to_be_focused()


def test_declining_a_request_on_a_phone_says_so_on_the_list_it_returns_to(open_sized):
    bob = open_sized(BOB, DESKTOP).sign_in()
    alice = open_sized(ALICE, PHONE).sign_in()
    bob.start_chat(ALICE)
    bob.send("hello?")
    request = alice.requests.get_by_test_id("conversation").filter(has_text=BOB)
    request.tap()
    expect_every_control_reachable(alice, PHONE, "request")
    alice.page.get_by_role("group", name="Answer this request").get_by_role(
        "button", name="Decline", exact=True).tap()
    expect(alice.page.get_by_role("status")).to_have_text(f"Declined the request from {BOB}.")
    expect(alice.page.get_by_role("button", name="New chat")).to_be_visible()


# The focused element's outline, as the keyboard user sees it.
FOCUS_OUTLINE_JS = """
() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return { tag: el.tagName, text: el.textContent.trim().slice(0, 20),
           outline: style.outlineStyle, width: parseFloat(style.outlineWidth) };
}
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_keyboard_focus_is_always_outlined(open_sized, scheme):
    alice = open_sized(ALICE, DESKTOP, color_scheme=scheme).sign_in()
    alice.start_chat(BOB)
    alice.page.locator("body").focus()
    unmarked = []
    for _ in range(12):
        alice.page.keyboard.press("Tab")
        focused = alice.page.evaluate(FOCUS_OUTLINE_JS)
        if focused["tag"] != "BODY" and (focused["outline"] == "none" or focused["width"] < 2):
            unmarked.append(focused)
    assert unmarked == []
