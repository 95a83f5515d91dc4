"""`unsend` and `typing` over real sockets on the local stack: two users, three sockets."""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_messaging_flow import Socket

ALICE, BOB = "+14155550131", "+14155550132"


@pytest.fixture
def three_sockets(stack):
    alice_phone, alice_laptop = stack.login(ALICE, "phone"), stack.login(ALICE, "laptop")
    bob = stack.login(BOB, "phone")
    status, chat, _ = stack.request("POST", "/conversations", {"members": [BOB]},
                                    token=alice_phone.access_token)
    assert status == 201
    status, _, _ = stack.request("POST", f"/conversations/{chat['id']}/accept",
                                 token=bob.access_token)
    assert status == 200
    sockets = [Socket(stack.open_socket(s)) for s in (alice_phone, alice_laptop, bob)]
    return (alice_phone, bob), sockets, chat["id"]


def unread_of(stack, session, chat: str) -> int:
    status, listed, _ = stack.request("GET", "/conversations", token=session.access_token)
    assert status == 200
    return next(c for c in listed["conversations"] if c["id"] == chat)["unread_count"]


def test_an_unsent_message_leaves_every_device_and_does_not_come_back(stack, stack_db,
                                                                       three_sockets):
    (alice, bob), (a1, a2, b1), chat = three_sockets
    for n in (1, 2):
        a1.send(action="send", conversation_id=chat, client_msg_id=f"e2e-unsend-{n}",
                body=f"oops {n}", req=f"s{n}")
        a1.wait_for("sent", req=f"s{n}")
        b1.wait_for("message", seq=n)
    assert unread_of(stack, bob, chat) == 2

    a1.send(action="unsend", conversation_id=chat, seq=2, req="take-back")

    answer = a1.wait_for("expired", req="take-back")
    assert (answer["ranges"], answer["reason"]) == ([[2, 2]], "unsent")
    for other in (a2, b1):
        told = other.wait_for("expired", conversation_id=chat)
        assert (told["ranges"], told["reason"], "req" in told) == ([[2, 2]], "unsent", False)
    assert b1.wait_for("unread", conversation_id=chat)["count"] == 1
    assert unread_of(stack, bob, chat) == 1
    rows = stack_db.run_read("t", lambda txn: (txn.execute(
        "SELECT seq FROM messages WHERE conversation_id = %s", (chat,)), txn.fetchall())[1])
    assert [row["seq"] for row in rows] == [1]

    a2.send(action="send", conversation_id=chat, client_msg_id="e2e-unsend-2", body="oops 2",
            req="retry")
    retry = a2.wait_for("sent", req="retry")
    assert (retry["duplicate"], retry.get("expired")) == (True, True)
    assert [f for f in b1.drain() if f["type"] == "message"] == []

    b1.send(action="unsend", conversation_id=chat, seq=1, req="not-mine")
    assert b1.wait_for("error", req="not-mine")["code"] == "forbidden"
    a1.send(action="unsend", conversation_id=chat, seq=2, req="twice")
    assert a1.wait_for("error", req="twice")["code"] == "gone"


def test_typing_reaches_the_other_user_and_writes_nothing(stack, stack_db, three_sockets):
    (alice, bob), (a1, a2, b1), chat = three_sockets
    for socket in (a1, a2, b1):  # fresh activity: the stack sweeps sockets idle for 3 s
        socket.send(action="ping", req="fresh")
        socket.wait_for("pong", req="fresh")
        socket.drain(0.1)
    before = stack_db.run_read("t", lambda txn: (txn.execute(
        "SELECT id, last_seen_at, silent FROM connections ORDER BY id"), txn.fetchall())[1])

    sent_at = time.time() * 1000
    a1.send(action="typing", conversation_id=chat, active=True)

    typing = b1.wait_for("typing", conversation_id=chat)
    assert (typing["user_id"], typing["active"]) == (alice.user_id, True)
    assert sent_at - 1 <= typing["at"] <= time.time() * 1000  # when the stack received it
    a1.send(action="typing", conversation_id=chat, active=False)
    stopped = b1.wait_for("typing", conversation_id=chat)
    assert stopped["active"] is False and stopped["at"] >= typing["at"]
    assert [f for f in a2.drain() if f["type"] == "typing"] == []
    assert [f for f in a1.drain(0.1) if f["type"] in ("typing", "error")] == []
    after = stack_db.run_read("t", lambda txn: (txn.execute(
        "SELECT id, last_seen_at, silent FROM connections ORDER BY id"), txn.fetchall())[1])
    assert after == before

    a1.send(action="typing", conversation_id=chat, active="yes", req="bad")
    assert a1.wait_for("error", req="bad")["code"] == "bad_request"


def newest_typing(frames: list[dict]) -> dict:
    """What a receiver keeps (asyncapi `typing`): the newest `at`, a stop winning a tie."""
    return max(frames, key=lambda frame: (frame["at"], not frame["active"]))


def test_a_stop_sent_just_after_a_start_is_the_newest_for_the_receiver(stack, three_sockets):
    # The stack, like API Gateway, handles one socket's frames concurrently: the stop may be
    # pushed before its start. `at` still orders them as they were sent.
    (alice, bob), (a1, a2, b1), chat = three_sockets
    for socket in (a1, b1):
        socket.send(action="ping", req="fresh")
        socket.wait_for("pong", req="fresh")
    for _ in range(5):  # two frames a round: the typing budget is 10 per connection
        a1.send(action="typing", conversation_id=chat, active=True)
        a1.send(action="typing", conversation_id=chat, active=False)
        stop = b1.wait_for("typing", conversation_id=chat, active=False)
        late = [f for f in b1.drain(0.2) if f["type"] == "typing"]
        assert newest_typing([stop, *late])["active"] is False
    assert [f for f in a1.drain(0.1) if f["type"] == "error"] == []
