"""The protocol's full flow over the local stack: two users with two sockets each."""

from __future__ import annotations

import json
import time

import pytest

ALICE, BOB = "+14155550101", "+14155550102"


class Socket:
    """A client socket that keeps what it receives, by frame type."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.frames: list[dict] = []

    def send(self, **frame) -> None:
        self.connection.send(json.dumps(frame, ensure_ascii=False))

    def wait_for(self, frame_type: str, timeout_s: float = 5, **match) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            for frame in self.frames:
                if frame["type"] == frame_type and all(frame.get(k) == v
                                                       for k, v in match.items()):
                    self.frames.remove(frame)
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {frame_type} {match} in {self.frames}")
            try:
                self.frames.append(json.loads(self.connection.recv(timeout=remaining)))
            except TimeoutError:
                continue

    def drain(self, wait_s: float = 0.5) -> list[dict]:
        """Everything that arrives within `wait_s`."""
        deadline = time.monotonic() + wait_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self.frames.append(json.loads(self.connection.recv(timeout=remaining)))
            except TimeoutError:
                break
        frames, self.frames = self.frames, []
        return frames


@pytest.fixture
def two_users(stack):
    alice = [stack.login(ALICE, "phone"), stack.login(ALICE, "laptop")]
    bob = [stack.login(BOB, "phone"), stack.login(BOB, "laptop")]
    status, chat, _ = stack.request("POST", "/conversations", {"members": [BOB]},
                                    token=alice[0].access_token)
    assert status == 201
    status, _, _ = stack.request("POST", f"/conversations/{chat['id']}/accept",
                                 token=bob[0].access_token)  # bob knows alice
    assert status == 200
    return alice, bob, chat["id"]


def test_send_ack_read_and_presence_across_four_sockets(stack, two_users):
    (alice_phone, alice_laptop), (bob_phone, bob_laptop), chat = two_users
    a1, a2 = Socket(stack.open_socket(alice_phone)), Socket(stack.open_socket(alice_laptop))
    b1 = Socket(stack.open_socket(bob_phone))
    assert a1.wait_for("presence", user_id=bob_phone.user_id)["online"] is True
    b2 = Socket(stack.open_socket(bob_laptop))

    a1.send(action="send", conversation_id=chat, client_msg_id="e2e-msg-001", body="héllo 👋",
            req="r1")
    sent = a1.wait_for("sent", req="r1")
    copies = [s.wait_for("message", client_msg_id="e2e-msg-001") for s in (a2, b1, b2)]

    assert (sent["seq"], sent["duplicate"]) == (1, False)
    assert {c["message_id"] for c in copies} == {sent["message_id"]}
    assert {c["body"] for c in copies} == {"héllo 👋"}

    b1.send(action="ack", conversation_id=chat, seq=1)
    assert a1.wait_for("receipt", kind="delivered")["user_id"] == bob_phone.user_id
    b2.send(action="read", conversation_id=chat, seq=1)
    assert a2.wait_for("receipt", kind="read")["seq"] == 1
    assert b1.wait_for("unread", conversation_id=chat)["count"] == 0

    b1.connection.close()
    b2.connection.close()
    offline = a1.wait_for("presence", user_id=bob_phone.user_id, online=False)
    assert isinstance(offline["last_seen_at"], int)
    assert [f for f in a1.drain() if f["type"] == "presence"] == []  # exactly one, no flapping


def test_a_retried_send_over_a_new_socket_gets_the_original_and_no_copy(stack, two_users):
    (alice_phone, _), (bob_phone, _), chat = two_users
    bob = Socket(stack.open_socket(bob_phone))
    first = Socket(stack.open_socket(alice_phone))
    first.send(action="send", conversation_id=chat, client_msg_id="flaky-net-1", body="once")
    original = first.wait_for("sent")
    first.connection.close()  # the network drops; the client reconnects and retries

    again = Socket(stack.open_socket(alice_phone))
    again.send(action="send", conversation_id=chat, client_msg_id="flaky-net-1", body="once")
    retry = again.wait_for("sent")

    assert (retry["message_id"], retry["duplicate"]) == (original["message_id"], True)
    assert [f["type"] for f in bob.drain()].count("message") == 1


def test_a_device_that_was_offline_catches_up_with_sync(stack, two_users):
    (alice_phone, _), (bob_phone, _), chat = two_users
    alice = Socket(stack.open_socket(alice_phone))
    for i in range(5):
        alice.send(action="send", conversation_id=chat, client_msg_id=f"offline-{i:03d}",
                   body=f"while you were away {i}")
        alice.wait_for("sent")

    bob = Socket(stack.open_socket(bob_phone))
    bob.send(action="sync", cursors={}, req="catch-up")
    reply = bob.wait_for("sync", req="catch-up")

    (entry,) = reply["conversations"]
    assert [m["seq"] for m in entry["messages"]] == [1, 2, 3, 4, 5]
    assert entry["unread_count"] == 5


def test_a_bad_frame_gets_an_error_and_the_socket_keeps_working(stack, two_users):
    (alice_phone, _), _, _ = two_users
    alice = Socket(stack.open_socket(alice_phone))

    alice.connection.send("{not json")
    error = alice.wait_for("error")
    alice.send(action="ping", req="p")

    assert error["code"] == "bad_request"
    assert alice.wait_for("pong", req="p")["server_time"] > 0


def test_the_schedule_deletes_expired_messages_and_live_clients_are_told(stack, two_users,
                                                                          stack_db):
    (alice_phone, _), (bob_phone, _), chat = two_users
    alice, bob = Socket(stack.open_socket(alice_phone)), Socket(stack.open_socket(bob_phone))
    alice.send(action="send", conversation_id=chat, client_msg_id="short-life", body="bye")
    seq = alice.wait_for("sent")["seq"]

    def expire_now(txn):  # as if its TTL ended a moment ago (the minimum TTL is 10 s)
        txn.execute("UPDATE messages SET expires_at = %s WHERE conversation_id = %s",
                    (int(time.time() * 1000) - 1, chat))

    stack_db.run_transaction("t", expire_now)

    for client in (alice, bob):
        frame = client.wait_for("expired", timeout_s=10, conversation_id=chat)
        assert (frame["ranges"], frame["up_to_seq"]) == ([[seq, seq]], seq)
    assert bob.wait_for("unread", conversation_id=chat)["count"] == 0
    status, page, _ = stack.request("GET", f"/conversations/{chat}/messages",
                                    token=bob_phone.access_token)
    assert (status, page["messages"]) == (200, [])
