"""Reading a conversation in the web client, in headless Chromium against the local stack:
scrolling back through older pages, the "New messages" pill, day separators, links, who
wrote and who has read each message in a group. The others write through the protocol
itself (REST and WebSocket from Python), so a test can fill a conversation quickly."""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from tests.e2e.test_messaging_flow import Socket

ALICE, BOB, CAROL, DAN = "+14155550101", "+14155550102", "+14155550103", "+14155550104"
# What one new account may send at once (send_burst_per_user and send_per_new_user).
BATCH = 20
# A device starts a conversation at its newest page (store.ts START_PAGE).
START_PAGE = 50

SCROLL_TOP_OF = """(seq) => {
  const list = document.querySelector('.messages');
  const item = list.querySelector(`[data-seq="${seq}"]`);
  return item.getBoundingClientRect().top - list.getBoundingClientRect().top;
}"""
LIST_GEOMETRY = """() => {
  const list = document.querySelector('.messages');
  return { top: list.scrollTop, height: list.scrollHeight, view: list.clientHeight };
}"""


class Writer:
    """Someone else in the conversation, signed in on a device of their own."""

    def __init__(self, stack, session) -> None:
        self.stack = stack
        self.session = session

    def write(self, conversation_id: str, bodies: list[str]) -> None:
        """Sends the bodies as one batch and waits until each is stored."""
        socket = Socket(self.stack.open_socket(self.session))
        tag = f"{time.monotonic_ns()}"
        socket.send(action="send", req=tag, conversation_id=conversation_id,
                    messages=[{"client_msg_id": f"seed-{tag}-{n}", "body": body}
                              for n, body in enumerate(bodies)])
        for _ in bodies:
            socket.wait_for("sent", req=tag)
        socket.connection.close()

    def move_cursor(self, action: str, conversation_id: str, seq: int) -> None:
        """`ack` (this device holds it: delivered) or `read`, and waits until the server has
        stored it: the frame has no reply, and a socket closed at once may race it."""
        socket = Socket(self.stack.open_socket(self.session))
        socket.send(action=action, conversation_id=conversation_id, seq=seq)
        cursor = "read_seq" if action == "read" else "delivered_seq"
        deadline = time.monotonic() + 5
        while self.own_cursor(conversation_id, cursor) < seq:
            assert time.monotonic() < deadline, f"{action} {seq} was never stored"
            time.sleep(0.05)
        socket.connection.close()

    def own_cursor(self, conversation_id: str, cursor: str) -> int:
        status, listing, _ = self.stack.request("GET", "/conversations",
                                                token=self.session.access_token)
        assert status == 200, listing
        conversation = next(c for c in listing["conversations"] if c["id"] == conversation_id)
        me = next(m for m in conversation["members"] if m["user_id"] == self.session.user_id)
        return me[cursor] or 0


def group_with(stack, owner: str, others: list[str], title: str) -> tuple[str, dict[str, Writer]]:
    """A group `owner` started with `others`, each of whom accepted it."""
    owner_session = stack.login(owner, "seed")
    status, group, _ = stack.request("POST", "/conversations", {"members": others, "title": title},
                                     token=owner_session.access_token)
    assert status == 201, group
    writers = {}
    for phone in others:
        session = stack.login(phone)
        status, reply, _ = stack.request("POST", f"/conversations/{group['id']}/accept",
                                         token=session.access_token)
        assert status == 200, reply
        writers[phone] = Writer(stack, session)
    return group["id"], writers


def seed(writers: dict[str, Writer], conversation_id: str, count: int) -> list[str]:
    """`count` numbered messages, a batch from each writer in turn (what a new account may send)."""
    bodies = [f"message {n:03d}" for n in range(1, count + 1)]
    in_turn = list(writers.values())
    for index, start in enumerate(range(0, count, BATCH)):
        in_turn[index % len(in_turn)].write(conversation_id, bodies[start:start + BATCH])
    return bodies


def geometry(user) -> dict:
    return user.page.evaluate(LIST_GEOMETRY)


def test_scrolling_back_loads_older_pages_and_the_view_does_not_jump(open_window, stack):
    group, writers = group_with(stack, ALICE, [BOB, CAROL, DAN], "History")
    bodies = seed(writers, group, 60)  # more than a device takes at first
    alice = open_window(ALICE).sign_in()
    alice.open_chat("History")

    # only the newest page at first, the newest in view
    expect(alice.messages).to_have_count(START_PAGE)
    expect(alice.messages.first).to_have_attribute("data-seq", str(60 - START_PAGE + 1))
    expect(alice.messages.last).to_be_in_viewport()

    # the reader reaches the top: the page before comes in above what they were reading
    first_held = 60 - START_PAGE + 1
    before = alice.page.evaluate(f"""() => {{
      document.querySelector('.messages').scrollTop = 0;
      return ({SCROLL_TOP_OF})({first_held});
    }}""")
    expect(alice.messages).to_have_count(60)
    expect(alice.bodies).to_have_text(bodies)
    after = alice.page.evaluate(SCROLL_TOP_OF, first_held)
    assert abs(after - before) <= 1, f"the view jumped by {after - before}px"
    assert geometry(alice)["top"] > 0
    expect(alice.page.get_by_test_id("older-messages")).to_have_count(0)  # nothing older remains


def test_a_new_message_while_reading_history_shows_the_pill_not_a_jump(open_window, stack):
    group, writers = group_with(stack, ALICE, [BOB, CAROL, DAN], "Pill")
    seed({phone: writers[phone] for phone in (BOB, CAROL)}, group, 40)  # Dan writes the news
    alice = open_window(ALICE).sign_in()
    alice.open_chat("Pill")
    expect(alice.messages).to_have_count(40)
    alice.page.evaluate("() => { document.querySelector('.messages').scrollTop = 0; }")
    reading = geometry(alice)
    assert reading["height"] - reading["view"] > 2 * reading["view"], "too little to scroll"

    writers[DAN].write(group, ["news while you read"])
    expect(alice.page.get_by_role("button", name="New messages")).to_be_visible()
    expect(alice.messages).to_have_count(41)
    assert geometry(alice)["top"] == reading["top"]  # the view stayed where the reader was
    expect(alice.messages.last).not_to_be_in_viewport()

    alice.page.get_by_role("button", name="New messages").click()
    expect(alice.messages.last).to_be_in_viewport()
    expect(alice.page.get_by_role("button", name="New messages")).to_have_count(0)

    # at the bottom, what arrives keeps the view at the bottom, without a pill
    writers[DAN].write(group, ["and more news"])
    expect(alice.bodies.last).to_have_text("and more news")
    expect(alice.messages.last).to_be_in_viewport()
    expect(alice.page.get_by_role("button", name="New messages")).to_have_count(0)

    # reading history again, my own send goes to the bottom
    alice.page.evaluate("() => { document.querySelector('.messages').scrollTop = 0; }")
    alice.send("my answer")
    expect(alice.bodies.last).to_have_text("my answer")
    expect(alice.messages.last).to_be_in_viewport()


def test_only_http_links_are_anchors_and_the_day_and_senders_are_named(open_window, stack):
    group, writers = group_with(stack, ALICE, [BOB, CAROL], "Links")
    bob = stack.login(BOB, "settings")
    status, _, _ = stack.request("PATCH", "/me", {"display_name": "Bea"}, token=bob.access_token)
    assert status == 200
    writers[BOB].write(group, ["javascript:alert(1)", "JAVASCRIPT:alert(document.domain)",
                               "data:text/html,<script>alert(1)</script>"])
    writers[CAROL].write(group, ["read https://example.com/page."])
    alice = open_window(ALICE).sign_in()
    expect(alice.conversation("Links")).to_contain_text(f"{CAROL}: read https://example.com/page.")
    alice.open_chat("Links")
    expect(alice.messages).to_have_count(4)

    links = alice.page.locator(".messages a")
    expect(links).to_have_count(1)
    expect(links).to_have_text("https://example.com/page")
    expect(links).to_have_attribute("href", "https://example.com/page")
    expect(links).to_have_attribute("target", "_blank")
    expect(links).to_have_attribute("rel", "noopener noreferrer")
    expect(alice.bodies.nth(0)).to_have_text("javascript:alert(1)")  # shown as text
    expect(alice.bodies.nth(3)).to_have_text("read https://example.com/page.")

    expect(alice.page.get_by_test_id("day-separator")).to_have_text(["Today"])
    expect(alice.messages.nth(0).locator(".sender")).to_have_text("Bea")
    expect(alice.messages.nth(3).locator(".sender")).to_have_text(CAROL)
    full = alice.messages.nth(0).locator("time")
    expect(full).to_have_attribute("title", _contains_year())


def test_in_a_group_who_has_read_my_message_shows_per_person(open_window, stack):
    group, others = group_with(stack, ALICE, [BOB, CAROL], "Receipts")
    alice = open_window(ALICE).sign_in()
    alice.open_chat("Receipts")
    alice.send("who has read this?")
    expect(alice.page.get_by_test_id("receipt")).to_have_text("sent")
    seq = int(alice.messages.first.get_attribute("data-seq"))
    others[BOB].move_cursor("read", group, seq)
    others[CAROL].move_cursor("ack", group, seq)

    alice.page.get_by_test_id("receipt").click()
    readers = alice.page.get_by_test_id("reader")
    expect(readers).to_have_text([f"{BOB}Read", f"{CAROL}Delivered"])

    # on a touch screen, a long press on a message opens the same details
    alice.page.get_by_role("button", name="Close").click()
    expect(alice.page.get_by_test_id("message-details")).to_have_count(0)
    alice.messages.first.dispatch_event("pointerdown", {"pointerType": "touch", "isPrimary": True,
                                                        "clientX": 10, "clientY": 10})
    details = alice.page.get_by_test_id("message-details")
    expect(details).to_be_visible()
    expect(details).to_contain_text(_contains_year())
    expect(details.get_by_test_id("reader")).to_have_count(2)


def _contains_year() -> re.Pattern:
    """A full date, as the title and the details show it, has the year in it."""
    return re.compile(str(time.localtime().tm_year))
