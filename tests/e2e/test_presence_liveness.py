"""Presence after a silent drop, end to end: a client whose socket stays open but who sends
nothing more (a shut lid, a lost network the TCP connection has not noticed yet) is shown
offline to the others, with its last activity, within the bound. The knobs are shortened so
the test takes seconds: silent after 2 s, swept every second, the idle limit far away."""

from __future__ import annotations

import json
import time
from typing import Any

from websockets.sync.client import ClientConnection

from tests.e2e.conftest import RunningStack, StackClient

ALICE, BOB = "+14155550101", "+14155550102"
SILENT_AFTER_S = 2
SWEEP_EVERY_S = 1
# silent_after + sweep_every, plus the local schedule's own pause between runs and a loaded
# machine's slowness: a run that never announced would still fail, well before the 30 s
# idle limit would close the socket.
BOUND_S = SILENT_AFTER_S + SWEEP_EVERY_S + 7


def presence_frames_until(watcher: ClientConnection, user_id: str, *, online: bool,
                          timeout_s: float) -> list[dict[str, Any]]:
    """Read the watcher's frames, pinging every half second as a live client does, until a
    presence frame about `user_id` says `online`; every presence frame about them so far."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    next_ping = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_ping:
            watcher.send(json.dumps({"action": "ping"}))
            next_ping = time.monotonic() + 0.5
        try:
            frame = json.loads(watcher.recv(timeout=0.2))
        except TimeoutError:
            continue
        if frame.get("type") == "presence" and frame["user_id"] == user_id:
            seen.append(frame)
            if frame["online"] is online:
                return seen
    raise AssertionError(f"no presence online={online} within {timeout_s} s: {seen}")


def test_a_client_that_stops_answering_is_shown_offline_to_the_other_within_the_bound(
        fresh_database_url):
    stack = RunningStack({"DATABASE_URL": fresh_database_url, "EXPIRY_INTERVAL_S": "1",
                          "PRESENCE_SILENT_AFTER_S": str(SILENT_AFTER_S),
                          "PRESENCE_SWEEP_EVERY_S": str(SWEEP_EVERY_S),
                          "WS_IDLE_TIMEOUT_S": "30"})
    try:
        stack.wait_until_ready()
        client = StackClient(stack)
        alice, bob = client.login(ALICE), client.login(BOB)
        status, chat, _ = client.request("POST", "/conversations", {"members": [BOB]},
                                         token=alice.access_token)
        assert status == 201, chat
        status, _, _ = client.request("POST", f"/conversations/{chat['id']}/accept",
                                      token=bob.access_token)
        assert status == 200
        bob_socket = client.open_socket(bob)
        opened_at_ms = int(time.time() * 1000)
        alice_socket = client.open_socket(alice)  # then Alice says nothing, and never closes
        presence_frames_until(bob_socket, alice.user_id, online=True, timeout_s=BOUND_S)

        silent_since = time.monotonic()
        (offline,) = presence_frames_until(bob_socket, alice.user_id, online=False,
                                           timeout_s=BOUND_S)
        shown_after_s = time.monotonic() - silent_since

        status, listing, _ = client.request("GET", "/conversations", token=bob.access_token)
        assert status == 200
        alice_member = next(m for c in listing["conversations"] for m in c["members"]
                            if m["user_id"] == alice.user_id)
        assert alice_socket.protocol.state.name == "OPEN"  # nothing closed it: it went quiet
    finally:
        client.close_sockets()
        stack.stop()

    assert shown_after_s <= BOUND_S
    # her last sign of life was opening the socket, not the sweep's time
    assert opened_at_ms - 1000 <= offline["last_seen_at"] <= opened_at_ms + 1000
    assert (alice_member["online"], alice_member["last_seen_at"]) == (
        False, offline["last_seen_at"])
