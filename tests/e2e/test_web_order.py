"""PROTOCOL "Keeping order" in a real browser against the real local stack: a backlog written
while the link is down arrives in the other window in the order it was written."""

from __future__ import annotations

from playwright.sync_api import Route, expect

from tests.e2e.web_client import cut_sockets_of

ALICE, BOB = "+14155550101", "+14155550102"
ROUNDS = 5
BURST = 15  # with the first message, within the default burst limit (20 sends per 10 s)
ARRIVAL_WAIT_MS = 20_000


def test_messages_written_while_the_socket_is_cut_arrive_in_the_order_written(
        open_window, stack, stack_db):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.send("before the tunnels")
    bob.accept_request(ALICE)
    expected = ["before the tunnels"]
    expect(bob.bodies).to_have_text(expected)

    for tunnel in range(ROUNDS):
        held_tickets = _hold_ticket_requests(alice)
        cut_sockets_of(alice, stack, stack_db)
        expect(alice.page.get_by_test_id("connection-status")).not_to_have_text("online")

        written = [f"tunnel {tunnel}: {word}" for word in ("one", "two", "three")]
        for text in written:
            alice.send(text)
        expect(alice.pending).to_have_count(3)

        _release(alice, held_tickets)
        alice.expect_connected()
        expected += written
        expect(bob.bodies).to_have_text(expected, timeout=ARRIVAL_WAIT_MS)
        expect(alice.pending).to_have_count(0)
        expect(alice.bodies).to_have_text(expected)


# --- helpers ------------------------------------------------------------------------------


def _hold_ticket_requests(user) -> list[Route]:
    """No new socket while the messages are typed: ticket requests wait until released."""
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    user.page.route("**/ws/ticket", hold)
    return held


def _release(user, held: list[Route]) -> None:
    for route in held:
        route.continue_()
    user.page.unroute("**/ws/ticket")  # passes on any request held since, too
    # a link waiting out its backoff (no request held) tries again now
    user.page.evaluate("() => window.dispatchEvent(new Event('online'))")



def test_a_burst_typed_in_one_window_arrives_in_the_other_in_the_order_typed(open_window):
    alice, bob = open_window(ALICE).sign_in(), open_window(BOB).sign_in()
    alice.start_chat(BOB)
    alice.send("the burst follows")
    bob.accept_request(ALICE)
    expect(bob.bodies).to_have_text(["the burst follows"])

    typed = [f"burst {n}" for n in range(BURST)]
    for text in typed:
        alice.send(text)

    expect(bob.bodies).to_have_text(["the burst follows", *typed], timeout=ARRIVAL_WAIT_MS)
    expect(alice.pending).to_have_count(0)
    expect(alice.bodies).to_have_text(["the burst follows", *typed])
