"""`unsend` (PROTOCOL "WebSocket additions"): the sender takes a message back before it
expires. The row is deleted at once, everyone's devices learn it with `expired` and
`reason: "unsent"`, unread counts fall, and the idempotency key stays so a retry does not
bring the message back (both engines unless noted)."""

from __future__ import annotations

import pytest

from chalicelib.services import conversations, expiry, reading
from chalicelib.services.context import Context
from chalicelib.services.limits import NoLimits, SlidingWindowLimiter, load_policies
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush


@pytest.fixture
def push() -> RecordingPush:
    return RecordingPush()


@pytest.fixture
def world(db, clock, push) -> World:
    return World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS),
                 push)


def seqs_stored(world: World, chat: str) -> list[int]:
    def select(txn):
        txn.execute("SELECT seq FROM messages WHERE conversation_id = %s ORDER BY seq", (chat,))
        return [row["seq"] for row in txn.fetchall()]

    return world.ctx.db.run_read("t", select)


def unread_listed(world: World, person, chat: str) -> int:
    listed = conversations.list_for(person.id, {}, world.ctx)["conversations"]
    return next(c for c in listed if c["id"] == chat)["unread_count"]


def error_of(world: World, caller) -> dict:
    return world.last(caller, "error")


@pytest.fixture
def pair(world):
    """Alice (two devices) and Bob (one) in a chat where Alice sent three messages."""
    alice, bob = world.person(), world.person()
    alice_phone, alice_laptop, bob_phone = (world.device(alice), world.device(alice),
                                            world.device(bob))
    chat = world.chat(alice, bob)
    for n in range(1, 4):
        world.send(alice_phone, chat, body=f"message {n}", client_msg_id=f"alice-msg-{n}")
    world.forget_frames()
    return alice, bob, alice_phone, alice_laptop, bob_phone, chat


# --- the effect -------------------------------------------------------------------------------


def test_an_unsent_message_is_deleted_and_every_device_learns_it(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair

    world.frame(alice_phone, "unsend", conversation_id=chat, seq=2, req="u1")

    assert seqs_stored(world, chat) == [1, 3]
    answer = world.last(alice_phone, "expired")
    assert answer == {"type": "expired", "conversation_id": chat, "ranges": [[2, 2]],
                      "up_to_seq": 0, "reason": "unsent", "req": "u1"}
    for other in (alice_laptop, bob_phone):
        (told,) = world.received(other, "expired")
        assert told == {key: value for key, value in answer.items() if key != "req"}
    assert world.received(alice_phone, "error") == []


def test_unsending_the_lowest_message_moves_up_to_seq(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair

    world.frame(alice_phone, "unsend", conversation_id=chat, seq=1)
    assert world.last(bob_phone, "expired")["up_to_seq"] == 1
    world.frame(alice_phone, "unsend", conversation_id=chat, seq=3)
    assert world.last(bob_phone, "expired")["up_to_seq"] == 1  # 2 is still there
    world.frame(alice_phone, "unsend", conversation_id=chat, seq=2)
    assert world.last(bob_phone, "expired")["up_to_seq"] == 3  # none left: all is gone
    assert seqs_stored(world, chat) == []


def test_the_others_unread_count_falls_by_one(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair
    bob_laptop = world.device(bob)
    assert unread_listed(world, bob, chat) == 3

    world.frame(alice_phone, "unsend", conversation_id=chat, seq=3)

    for device in (bob_phone, bob_laptop):
        assert world.last(device, "unread") == {"type": "unread", "conversation_id": chat,
                                                "count": 2}
    assert unread_listed(world, bob, chat) == 2
    assert world.received(alice_phone, "unread") == []  # her own message never counted


def test_a_message_already_read_sends_no_unread(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair
    world.frame(bob_phone, "read", conversation_id=chat, seq=2)
    world.forget_frames()

    world.frame(alice_phone, "unsend", conversation_id=chat, seq=1)

    assert world.received(bob_phone, "expired") != []
    assert world.received(bob_phone, "unread") == []
    assert unread_listed(world, bob, chat) == 1


def test_a_retried_send_of_an_unsent_message_is_a_duplicate_that_expired(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair
    world.frame(alice_phone, "unsend", conversation_id=chat, seq=2)
    world.forget_frames()

    world.send(alice_laptop, chat, body="message 2", client_msg_id="alice-msg-2", req="again")

    sent = world.last(alice_laptop, "sent")
    assert (sent["duplicate"], sent.get("expired"), sent["seq"]) == (True, True, 2)
    assert seqs_stored(world, chat) == [1, 3]
    assert world.received(bob_phone, "message") == []


def test_the_key_outlives_the_sweep_and_the_housekeeping(world, pair, clock):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair
    world.frame(alice_phone, "unsend", conversation_id=chat, seq=2)
    clock.advance(seconds=60)

    expiry.run_cleanup(world.ctx, idle_timeout_s=3600, max_connection_s=7200)
    world.send(alice_phone, chat, body="message 2", client_msg_id="alice-msg-2")

    sent = world.last(alice_phone, "sent")
    assert (sent["duplicate"], sent.get("expired")) == (True, True)
    assert seqs_stored(world, chat) == [1, 3]


def test_sync_and_history_skip_the_unsent_message(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair
    world.frame(alice_phone, "unsend", conversation_id=chat, seq=1)
    world.frame(alice_phone, "unsend", conversation_id=chat, seq=2)

    world.frame(bob_phone, "sync", cursors={chat: 0})
    (entry,) = world.last(bob_phone, "sync")["conversations"]
    assert entry["first_seq"] == 3 and [m["seq"] for m in entry["messages"]] == [3]
    page = reading.history(bob.id, chat, {}, world.ctx)
    assert [m["seq"] for m in page["messages"]] == [3]
    back = reading.history(bob.id, chat, {"before_seq": 4}, world.ctx)
    assert [m["seq"] for m in back["messages"]] == [3]


# --- refusals ---------------------------------------------------------------------------------


def test_someone_elses_message_is_forbidden(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair

    world.frame(bob_phone, "unsend", conversation_id=chat, seq=1, req="x")

    assert error_of(world, bob_phone)["code"] == "forbidden"
    assert error_of(world, bob_phone)["req"] == "x"
    assert seqs_stored(world, chat) == [1, 2, 3]
    assert world.received(alice_phone, "expired") == []


def test_unsending_twice_is_gone(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair
    world.frame(alice_phone, "unsend", conversation_id=chat, seq=2)
    world.forget_frames()

    world.frame(alice_laptop, "unsend", conversation_id=chat, seq=2)

    assert error_of(world, alice_laptop)["code"] == "gone"
    assert world.received(bob_phone) == []


def test_an_expired_message_is_gone_even_before_the_sweep(world, pair, clock):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair
    clock.advance(seconds=3601)

    world.frame(alice_phone, "unsend", conversation_id=chat, seq=1)

    assert error_of(world, alice_phone)["code"] == "gone"
    assert world.received(bob_phone, "expired") == []


def test_a_non_participant_gets_not_found(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair
    stranger = world.device(world.person())

    world.frame(stranger, "unsend", conversation_id=chat, seq=1)
    world.frame(stranger, "unsend", conversation_id="no-such-chat", seq=1)

    assert [e["code"] for e in world.received(stranger, "error")] == ["not_found"] * 2
    assert seqs_stored(world, chat) == [1, 2, 3]


def test_a_member_who_declined_gets_not_found(world):
    stranger, owner = world.person(), world.person()
    stranger_phone, owner_phone = world.device(stranger), world.device(owner)
    chat = world.chat(stranger, owner, accepted=False)
    world.send(owner_phone, chat, client_msg_id="owner-msg-1")  # sending accepts it
    world.send(stranger_phone, chat, client_msg_id="stranger-1")
    world.sql("UPDATE participants SET consent = 'declined' WHERE user_id = %s", owner.id)

    world.frame(owner_phone, "unsend", conversation_id=chat, seq=1)

    assert error_of(world, owner_phone)["code"] == "not_found"
    assert seqs_stored(world, chat) == [1, 2]


@pytest.mark.parametrize("seq", [0, -1, "1", 1.5, True, None, 2**53])
def test_a_bad_seq_is_bad_request_and_changes_nothing(world, pair, seq):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair

    world.frame(alice_phone, "unsend", conversation_id=chat, seq=seq)

    assert error_of(world, alice_phone)["code"] == "bad_request"
    assert seqs_stored(world, chat) == [1, 2, 3]
    assert world.received(bob_phone) == []


def test_a_missing_conversation_id_is_bad_request(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair

    world.frame(alice_phone, "unsend", seq=1)

    assert error_of(world, alice_phone)["code"] == "bad_request"


def test_a_seq_beyond_the_last_or_before_joining_is_not_found(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, chat = pair
    world.frame(alice_phone, "unsend", conversation_id=chat, seq=4)
    world.sql("UPDATE participants SET joined_seq = 2 WHERE user_id = %s AND"
              " conversation_id = %s", alice.id, chat)
    world.frame(alice_phone, "unsend", conversation_id=chat, seq=2)

    assert [e["code"] for e in world.received(alice_phone, "error")] == ["not_found"] * 2
    assert seqs_stored(world, chat) == [1, 2, 3]


def test_a_group_member_who_declined_gets_no_frames(world):
    alice, bob, carol = world.person(), world.person(), world.person()
    alice_phone, bob_phone, carol_phone = (world.device(alice), world.device(bob),
                                           world.device(carol))
    group = world.chat(alice, bob, carol)
    world.send(alice_phone, group, client_msg_id="group-msg-1")
    world.sql("UPDATE participants SET consent = 'declined' WHERE user_id = %s", carol.id)
    world.forget_frames()

    world.frame(alice_phone, "unsend", conversation_id=group, seq=1)

    assert world.received(bob_phone, "expired") != []
    assert world.received(carol_phone) == []


def test_unsend_counts_against_the_frame_budget(mysql_db, clock, push):
    limiter = SlidingWindowLimiter(db=mysql_db, clock=clock, policies=load_policies(
        {"RATE_FRAMES_PER_CONNECTION": "3/60"}))
    world = World(Context(db=mysql_db, push=push, clock=clock, limiter=limiter,
                          keys=TEST_KEYS), push)
    alice, bob = world.person(), world.person()
    alice_phone = world.device(alice)
    world.device(bob)
    chat = world.chat(alice, bob)
    world.send(alice_phone, chat, client_msg_id="budget-msg-1")
    world.send(alice_phone, chat, client_msg_id="budget-msg-2")

    world.frame(alice_phone, "unsend", conversation_id=chat, seq=1)  # the third frame
    world.frame(alice_phone, "unsend", conversation_id=chat, seq=2)  # over the budget

    assert world.last(alice_phone, "error")["code"] == "rate_limited"
    assert seqs_stored(world, chat) == [2]
