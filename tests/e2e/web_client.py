"""The web client in headless Chromium, driven the way a person uses it: labels, buttons and
what is on screen. Debian's `chromium` (apt) is the browser; Playwright cannot download its own
here."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import urllib3
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from chalicelib.storage import connections

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps dialling Google on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def launch_chromium() -> Iterator[Browser]:
    """Fails (never skips) without the browser: CI installs it, and so must a developer."""
    if not CHROMIUM.is_file():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: `apt-get install chromium`"
                    " (or point CHROMIUM_PATH at one)", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def browser_windows(browser: Browser, base_url: str) -> Iterator[Callable[..., WebUser]]:
    """Opens windows (each its own context: `open_for(phone, **context_options)`, e.g. a
    viewport or a locale) on the stack at `base_url`; all are closed at the end, and a script
    error in any of them fails the test."""
    users: list[WebUser] = []

    def open_for(phone: str, **context_options: Any) -> WebUser:
        user = WebUser(browser.new_context(**context_options), base_url, phone)
        users.append(user)
        return user

    try:
        yield open_for
        errors = [error for user in users for error in user.page_errors]
        assert errors == [], f"the web client threw: {errors}"
    finally:
        for user in users:
            user.context.close()


class WebUser:
    """One person in one browser window (its own context: its own session storage)."""

    def __init__(self, context: BrowserContext, base_url: str, phone: str) -> None:
        self.context = context
        self.base_url = base_url
        self.phone = phone
        self.page: Page = context.new_page()
        self.page_errors: list[str] = []
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("console", self._on_console)

    def _on_console(self, message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.page_errors.append(message.text)

    # --- signing in -----------------------------------------------------------------------

    def request_code(self) -> None:
        self.page.goto(self.base_url)
        self.page.get_by_label("Phone number", exact=True).fill(self.phone)
        self.page.get_by_role("button", name="Send code").click()
        # the code is in the outbox once the server has answered
        expect(self.page.get_by_role("form", name="Enter code")).to_be_visible()

    def sign_in(self) -> WebUser:
        self.request_code()
        self.page.get_by_role("button", name="Use it").click()  # the local stage shows the code
        self.page.get_by_role("button", name="Sign in").click()
        self.expect_connected()
        return self

    def expect_connected(self) -> None:
        expect(self.page.get_by_test_id("connection-status")).to_have_text("online")

    # --- chatting -------------------------------------------------------------------------

    def start_chat(self, *phones: str, title: str = "") -> None:
        """Clicks "New chat", fills in the numbers (and a group's title), starts: the chat opens."""
        self.page.get_by_role("button", name="New chat").click()
        self.page.get_by_label("Phone numbers").fill(", ".join(phones))
        if title:
            self.page.get_by_label("Group title (optional)").fill(title)
        self.page.get_by_role("button", name="Start chat").click()
        heading = self.page.get_by_role("heading", level=2)
        expect(heading).not_to_have_text("New chat")
        expect(heading).to_be_visible()

    def open_chat(self, name: str) -> None:
        self.conversation(name).click()
        expect(self.page.get_by_role("heading", level=2)).to_have_text(name)

    def send(self, text: str) -> None:
        composer = self.page.get_by_label("Message", exact=True)
        composer.fill(text)
        composer.press("Enter")

    def conversation(self, name: str) -> Locator:
        return self.page.get_by_test_id("conversation").filter(has_text=name)

    @property
    def messages(self) -> Locator:
        return self.page.get_by_test_id("message")

    @property
    def bodies(self) -> Locator:
        """The text of each message on screen, oldest first."""
        return self.messages.get_by_test_id("body")

    @property
    def pending(self) -> Locator:
        return self.page.get_by_test_id("pending-message")

    def session_storage(self) -> dict:
        return self.page.evaluate("() => JSON.parse(sessionStorage.getItem('ephemera.session'))")

    # --- safety: requests, settings, blocks ------------------------------------------------

    @property
    def requests(self) -> Locator:
        """The "Message requests" list in the sidebar (absent while there are none)."""
        return self.page.get_by_role("navigation", name="Message requests")

    @property
    def chats(self) -> Locator:
        """The list of accepted chats, apart from the requests."""
        return self.page.get_by_role("navigation", name="Chats")

    @property
    def presence(self) -> Locator:
        return self.page.get_by_test_id("presence")

    def accept_request(self, name: str) -> None:
        """Opens the request from `name` (listed once they have written) and accepts it."""
        self.requests.get_by_test_id("conversation").filter(has_text=name).click()
        expect(self.page.get_by_role("heading", level=2)).to_have_text(name)
        self.page.get_by_role("button", name="Accept", exact=True).click()
        expect(self.requests.get_by_test_id("conversation").filter(has_text=name)).to_have_count(0)

    def open_settings(self) -> None:
        self.page.get_by_role("button", name="Settings", exact=True).click()
        expect(self.page.get_by_role("heading", level=2)).to_have_text("Settings")

    def close_settings(self) -> None:
        self.page.get_by_role("button", name="Close settings").click()

    def set_display_name(self, name: str) -> None:
        self.open_settings()
        self.page.get_by_label("Display name", exact=True).fill(name)
        self.page.get_by_role("button", name="Save", exact=True).click()
        expect(self.page.get_by_role("status")).to_have_text("Saved.")
        self.close_settings()

    @property
    def blocked_people(self) -> Locator:
        """Settings' list of blocked people, one entry per person."""
        return self.page.get_by_test_id("blocked-person")

    # --- unsend, my data, deleting the account ---------------------------------------------

    def unsend(self, body: str) -> None:
        """Opens the actions of my message that reads `body` and unsends it, confirming."""
        body_text = self.page.get_by_test_id("body").get_by_text(body, exact=True)
        message = self.messages.filter(has=body_text)
        message.hover()
        message.get_by_role("button", name="Message actions").click()
        message.get_by_role("button", name="Unsend", exact=True).click()
        message.get_by_role("button", name="Unsend for everyone").click()

    def download_my_data(self) -> tuple[str, dict]:
        """Settings → "Download my data": the file's suggested name and its JSON."""
        self.open_settings()
        with self.page.expect_download() as download_info:
            self.page.get_by_role("button", name="Download my data").click()
        download = download_info.value
        with open(download.path(), encoding="utf-8") as file:
            data = json.load(file)
        self.close_settings()
        return download.suggested_filename, data

    def ask_to_delete_account(self) -> Locator:
        """Settings → "Delete account…" → "Send code": the form that takes the texted code."""
        self.open_settings()
        self.page.get_by_role("button", name="Delete account…").click()
        self.page.get_by_role("button", name="Send code").click()
        form = self.page.get_by_role("form", name="Confirm account deletion")
        expect(form).to_be_visible()
        return form

    def confirm_account_deletion(self, code: str) -> None:
        form = self.page.get_by_role("form", name="Confirm account deletion")
        form.get_by_label("Code").fill(code)
        form.get_by_role("button", name="Delete my account").click()

    # --- groups: members, notices, typing ---------------------------------------------------

    @property
    def members_panel(self) -> Locator:
        return self.page.get_by_test_id("members-panel")

    @property
    def member_rows(self) -> Locator:
        """One row per member in the open members panel."""
        return self.members_panel.get_by_test_id("member")

    def member_row(self, name: str) -> Locator:
        return self.member_rows.filter(has_text=name)

    def open_members(self) -> None:
        self.page.get_by_role("button", name="Members", exact=True).click()
        expect(self.members_panel).to_be_visible()

    def close_members(self) -> None:
        self.members_panel.get_by_role("button", name="Close", exact=True).click()
        expect(self.members_panel).to_have_count(0)

    @property
    def add_people_field(self) -> Locator:
        """The members panel's phone field (owner and admins only)."""
        return self.members_panel.get_by_role("textbox", name="Add people")

    def add_members(self, *phones: str) -> None:
        """In the open members panel: "Add people" with these numbers."""
        self.add_people_field.fill(", ".join(phones))
        self.members_panel.get_by_role("button", name="Add", exact=True).click()
        expect(self.add_people_field).to_have_value("")

    def leave_group(self) -> None:
        """Members panel, "Leave group", then the confirmation."""
        self.open_members()
        self.members_panel.get_by_role("button", name="Leave group").click()
        self.members_panel.get_by_role("button", name="Leave", exact=True).click()

    @property
    def notices(self) -> Locator:
        """The lines in the chat that are not messages ("Alice added Bob")."""
        return self.page.get_by_test_id("notice")

    @property
    def typing_line(self) -> Locator:
        return self.page.get_by_test_id("typing")

    @property
    def ttl_picker(self) -> Locator:
        return self.page.get_by_label("Messages expire after")


def cut_sockets_of(user, stack, stack_db) -> None:
    """What a dropped network looks like to the server: the stack closes the user's sockets.
    (Playwright's setOffline leaves open WebSockets alive.)"""
    user_id = user.session_storage()["userId"]
    ids = stack_db.run_read("t", connections.connection_ids_of_user, user_id)
    assert ids, "the user had no open socket to cut"
    http = urllib3.PoolManager()
    for connection_id in ids:
        reply = http.request("DELETE", f"{stack.base_url}/local/@connections/{connection_id}")
        assert reply.status == 204
