"""The real-time core through the `$default` dispatcher: sends, retries, ordering, receipts,
unread counts, sync and the errors a client can cause (both engines unless noted)."""

from __future__ import annotations

import pytest

from chalicelib.services import conversations, reading
from chalicelib.services.context import Context
from chalicelib.services.limits import NoLimits
from chalicelib.services.presence import CONNECTING_MS
from chalicelib.storage import conversations as storage_conversations
from tests.integration.messaging_world import World
from tests.support.concurrency import run_in_threads
from tests.support.fakes import TEST_KEYS, RecordingPush


@pytest.fixture
def push() -> RecordingPush:
    return RecordingPush()


@pytest.fixture
def world(db, clock, push) -> World:
    return World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS), push)


def test_a_send_reaches_every_other_connection_once_and_the_sender_gets_sent(world):
    alice, bob = world.person(), world.person()
    alice_phone, alice_laptop = world.device(alice), world.device(alice)
    bob_phone, bob_laptop = world.device(bob), world.device(bob)
    chat = world.chat(alice, bob)
    world.forget_frames()

    world.send(alice_phone, chat, body="hi bob", client_msg_id="msg-0001", req="r1")

    sent = world.last(alice_phone, "sent")
    assert sent["req"] == "r1" and sent["seq"] == 1 and sent["duplicate"] is False
    assert world.received(alice_phone, "message") == []
    for other in (alice_laptop, bob_phone, bob_laptop):
        (message,) = world.received(other, "message")
        assert (message["body"], message["seq"], message["sender_id"]) == ("hi bob", 1, alice.id)
        assert message["message_id"] == sent["message_id"]
        assert message["sender_device_id"] == alice_phone.device_id
        assert message["expires_at"] == message["created_at"] + 3600 * 1000


def test_retry_with_same_client_msg_id_returns_original(world):
    alice, bob = world.person(), world.person()
    phone, bob_phone = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    world.forget_frames()

    for attempt in range(5):
        world.send(phone, chat, body="once", client_msg_id="retry-me-1", req=attempt)

    replies = world.received(phone, "sent")
    assert [r["req"] for r in replies] == [0, 1, 2, 3, 4]
    assert {(r["message_id"], r["seq"]) for r in replies} == {(replies[0]["message_id"], 1)}
    assert [r["duplicate"] for r in replies] == [False, True, True, True, True]
    assert world.count("messages") == 1
    assert len(world.received(bob_phone, "message")) == 1


def test_a_reused_client_msg_id_with_another_body_or_conversation_is_a_conflict(world):
    alice, bob, carol = world.person(), world.person(), world.person()
    phone = world.device(alice)
    chat, other_chat = world.chat(alice, bob), world.chat(alice, carol)
    world.send(phone, chat, body="original", client_msg_id="same-id-01")

    world.send(phone, chat, body="changed", client_msg_id="same-id-01", req="a")
    world.send(phone, other_chat, body="original", client_msg_id="same-id-01", req="b")

    errors = world.received(phone, "error")
    assert [(e["code"], e["req"]) for e in errors] == [("conflict", "a"), ("conflict", "b")]
    assert world.count("messages") == 1


def test_a_retry_after_the_message_expired_still_gets_its_ids(world, clock):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob, ttl_seconds=10)
    world.send(phone, chat, body="short-lived", client_msg_id="expiring-1")
    original = world.last(phone, "sent")

    clock.advance(seconds=10)
    world.send(phone, chat, body="short-lived", client_msg_id="expiring-1")

    retry = world.last(phone, "sent")
    assert (retry["message_id"], retry["seq"]) == (original["message_id"], original["seq"])
    assert retry["duplicate"] is True and retry["expired"] is True


def test_seq_is_strictly_increasing_per_conversation(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat, other = world.chat(alice, bob), world.chat(alice, world.person())

    for _ in range(3):
        world.send(phone, chat)
    world.send(phone, other)

    assert [s["seq"] for s in world.received(phone, "sent")] == [1, 2, 3, 1]


def test_a_non_member_can_do_nothing_to_a_conversation_and_nothing_is_written(world):
    alice, bob, mallory = world.person(), world.person(), world.person()
    world.device(alice)
    chat = world.chat(alice, bob)
    intruder = world.device(mallory)
    world.forget_frames()

    world.send(intruder, chat, req="s")
    world.frame(intruder, "ack", conversation_id=chat, seq=0, req="a")
    world.frame(intruder, "read", conversation_id=chat, seq=0, req="r")
    world.frame(intruder, "sync", cursors={chat: 0}, req="y")
    world.send(intruder, "no-such-conversation", req="n")

    assert [(e["code"], e["req"]) for e in world.received(intruder)] == [
        ("not_found", "s"), ("not_found", "a"), ("not_found", "r"), ("not_found", "y"),
        ("not_found", "n")]
    assert world.count("messages") == 0
    assert world.count("idempotency_keys") == 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, "bad_request"),
        ("None", "bad_request"),
        ("{not json", "bad_request"),
        ("[1, 2]", "bad_request"),
        ('{"action": "dance"}', "bad_request"),
        ('{"action": "send", "conversation_id": "c", "client_msg_id": "short", "body": "x"}',
         "bad_request"),
        ('{"action": "send", "conversation_id": "c", "client_msg_id": "has spaces!",'
         ' "body": "x"}', "bad_request"),
        ('{"action": "send", "conversation_id": "c", "client_msg_id": "client-01", "body": ""}',
         "bad_request"),
        ('{"action": "send", "conversation_id": "c", "client_msg_id": "client-01", "body": 7}',
         "bad_request"),
        ('{"action": "ack", "conversation_id": "c", "seq": -1}', "bad_request"),
        ('{"action": "ack", "conversation_id": "c", "seq": true}', "bad_request"),
        ('{"action": "read", "conversation_id": 5, "seq": 1}', "bad_request"),
        ('{"action": "sync", "cursors": {"c": "one"}}', "bad_request"),
        ('{"action": "sync", "cursors": {}, "limit": 501}', "bad_request"),
        ('{"action": "ping", "req": {"nested": true}}', "bad_request"),
    ],
)
def test_a_malformed_frame_gets_an_error_and_the_socket_stays_usable(world, raw, code):
    phone = world.device(world.person())
    world.forget_frames()

    world.raw(phone, raw)
    world.frame(phone, "ping", req="still-there")

    error, pong = world.received(phone)
    assert error["type"] == "error" and error["code"] == code
    assert pong == {"type": "pong", "req": "still-there",
                    "server_time": world.ctx.clock.now_ms()}
    assert world.count("messages") == 0


def test_a_body_over_16_kb_is_too_large_and_one_at_the_limit_is_fine(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    world.forget_frames()

    world.send(phone, chat, body="é" * 8193, req="big")      # 16,386 bytes of UTF-8
    world.send(phone, chat, body="é" * 8192, req="fits")     # exactly 16,384

    error, sent = world.received(phone)
    assert (error["type"], error["code"], error["req"]) == ("error", "too_large", "big")
    assert (sent["type"], sent["req"]) == ("sent", "fits")


def test_errors_echo_req_when_the_frame_had_one(world):
    phone = world.device(world.person())
    world.forget_frames()

    world.raw(phone, '{"action": "dance", "req": 42}')

    assert world.last(phone, "error")["req"] == 42


def test_ack_and_read_move_forward_only_and_send_receipts_to_the_others(world):
    alice, bob = world.person(), world.person()
    alice_phone, bob_phone, bob_laptop = world.device(alice), world.device(bob), world.device(bob)
    chat = world.chat(alice, bob)
    for _ in range(5):
        world.send(alice_phone, chat)
    world.forget_frames()

    world.frame(bob_phone, "ack", conversation_id=chat, seq=4)
    world.frame(bob_laptop, "ack", conversation_id=chat, seq=2)     # behind: no move
    world.frame(bob_phone, "read", conversation_id=chat, seq=3)
    world.frame(bob_phone, "read", conversation_id=chat, seq=1)     # behind: no move
    world.frame(bob_phone, "ack", conversation_id=chat, seq=99)     # capped at last_seq

    receipts = [(r["kind"], r["seq"]) for r in world.received(alice_phone, "receipt")]
    assert receipts == [("delivered", 4), ("read", 3), ("delivered", 5)]
    assert all(r["user_id"] == bob.id for r in world.received(alice_phone, "receipt"))
    assert world.received(bob_phone, "receipt") == []
    assert [u["count"] for u in world.received(bob_laptop, "unread")] == [2]
    assert [u["count"] for u in world.received(bob_phone, "unread")] == [2]


def test_an_offline_device_gets_exactly_what_it_missed_by_sync_in_order(world):
    alice, bob = world.person(), world.person()
    alice_phone, bob_phone = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    world.send(alice_phone, chat, body="seen before")
    world.disconnect(bob_phone)
    for i in range(30):
        world.send(alice_phone, chat, body=f"missed {i}")

    bob_back = world.device(bob)
    world.frame(bob_back, "sync", cursors={chat: 1}, req="catch-up")

    reply = world.last(bob_back, "sync")
    (entry,) = reply["conversations"]
    assert reply["req"] == "catch-up"
    assert [m["body"] for m in entry["messages"]] == [f"missed {i}" for i in range(30)]
    assert [m["seq"] for m in entry["messages"]] == list(range(2, 32))
    assert (entry["has_more"], entry["last_seq"], entry["first_seq"]) == (False, 31, 1)
    assert (entry["read_seq"], entry["unread_count"]) == (0, 31)


def test_sync_pages_with_has_more_and_includes_unlisted_conversations_from_the_start(world):
    alice, bob = world.person(), world.person()
    alice_phone, bob_phone = world.device(alice), world.device(bob)
    chat, group = world.chat(alice, bob), world.chat(alice, bob, world.person())
    for _ in range(7):
        world.send(alice_phone, chat)
    world.send(alice_phone, group, body="in the group")

    world.frame(bob_phone, "sync", cursors={chat: 0}, limit=3)
    first = {e["conversation_id"]: e for e in world.last(bob_phone, "sync")["conversations"]}
    world.frame(bob_phone, "sync", cursors={chat: 6, group: 1}, limit=3)
    second = {e["conversation_id"]: e for e in world.last(bob_phone, "sync")["conversations"]}

    assert [m["seq"] for m in first[chat]["messages"]] == [1, 2, 3]
    assert first[chat]["has_more"] is True
    assert [m["body"] for m in first[group]["messages"]] == ["in the group"]
    assert [m["seq"] for m in second[chat]["messages"]] == [7]
    assert second[chat]["has_more"] is False
    assert second[group]["messages"] == []


def test_expired_messages_are_neither_synced_nor_counted(world, clock):
    alice, bob = world.person(), world.person()
    alice_phone, bob_phone = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob, ttl_seconds=10)
    world.send(alice_phone, chat, body="gone soon")
    clock.advance(seconds=5)
    world.send(alice_phone, chat, body="still here")

    clock.advance(seconds=5)  # the first is now exactly at its expiry
    world.frame(bob_phone, "sync", cursors={})

    (entry,) = world.last(bob_phone, "sync")["conversations"]
    assert [m["body"] for m in entry["messages"]] == ["still here"]
    assert (entry["first_seq"], entry["unread_count"]) == (2, 1)


def test_sync_of_a_conversation_i_am_not_in_is_not_found(world):
    bob = world.device(world.person())
    other = world.chat(world.person(), world.person())

    world.frame(bob, "sync", cursors={other: 0}, req="s")

    assert world.last(bob, "error")["code"] == "not_found"


def test_ping_answers_pong_with_server_time(world, clock):
    phone = world.device(world.person())

    world.frame(phone, "ping", req="p1")

    assert world.last(phone, "pong") == {"type": "pong", "req": "p1",
                                         "server_time": clock.now_ms()}


def test_a_gone_connection_is_dropped_and_the_send_still_succeeds(world):
    alice, bob = world.person(), world.person()
    alice_phone, bob_phone, bob_laptop = world.device(alice), world.device(bob), world.device(bob)
    chat = world.chat(alice, bob)
    world.push.gone.add(bob_laptop.connection_id)
    world.ctx.clock.advance(ms=CONNECTING_MS + 1)

    world.send(alice_phone, chat, body="one of you is gone")

    assert world.last(alice_phone, "sent")["seq"] == 1
    assert len(world.received(bob_phone, "message")) == 1
    assert world.count("connections") == 2


# --- concurrency (MariaDB: real row locks and unique keys) -------------------------------


@pytest.fixture
def mysql_world(mysql_db, clock) -> World:
    push = RecordingPush()
    return World(Context(db=mysql_db, push=push, clock=clock, limiter=NoLimits(),
                          keys=TEST_KEYS), push)


def test_five_concurrent_copies_of_a_send_make_one_message(mysql_world):
    world = mysql_world
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    world.forget_frames()

    run_in_threads(5, lambda i: world.send(phone, chat, body="race", client_msg_id="racing-01",
                                           req=i))

    replies = world.received(phone, "sent")
    assert len(replies) == 5, world.received(phone)
    assert len({(r["message_id"], r["seq"]) for r in replies}) == 1
    assert sorted(r["duplicate"] for r in replies) == [False, True, True, True, True]
    assert world.count("messages") == 1


def test_twenty_concurrent_senders_get_seqs_without_gap_or_duplicate(mysql_world):
    world = mysql_world
    alice, bob = world.person(), world.person()
    devices = [world.device(alice) for _ in range(4)] + [world.device(bob) for _ in range(4)]
    chat = world.chat(alice, bob)
    world.forget_frames()

    run_in_threads(20, lambda i: [world.send(devices[i % 8], chat, body=f"{i}-{n}")
                                  for n in range(3)])

    seqs = sorted(r["seq"] for d in devices for r in world.received(d, "sent"))
    assert seqs == list(range(1, 61))


def test_concurrent_reads_from_many_devices_move_the_cursors_once_each_and_only_forward(
        mysql_world):
    world = mysql_world
    alice, bob = world.person(), world.person()
    alice_phone = world.device(alice)
    bob_devices = [world.device(bob) for _ in range(4)]
    chat = world.chat(alice, bob)
    for _ in range(10):
        world.send(alice_phone, chat)
    world.forget_frames()

    run_in_threads(8, lambda i: world.frame(bob_devices[i % 4], "read", conversation_id=chat,
                                            seq=i + 1))

    row = world.ctx.db.run_read("test", storage_conversations.get_participant, chat, bob.id)
    assert (row.read_seq, row.delivered_seq) == (8, 8)
    read_receipts = [r["seq"] for r in world.received(alice_phone, "receipt")
                     if r["kind"] == "read"]
    assert 8 in read_receipts and len(set(read_receipts)) == len(read_receipts)
    # Each unread count pushed is the one its own move left: 10 messages less those read.
    counts = sorted({u["count"] for d in bob_devices for u in world.received(d, "unread")})
    assert counts == sorted(10 - seq for seq in read_receipts)
    assert not any(world.received(d, "error") for d in bob_devices)


def test_history_pages_forward_and_hides_expired_messages(world, clock):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob, ttl_seconds=60)
    world.send(phone, chat, body="expires first")
    clock.advance(seconds=30)
    for i in range(4):
        world.send(phone, chat, body=f"later {i}")
    clock.advance(seconds=30)

    first = reading.history(bob.id, chat, {"limit": "2"}, world.ctx)
    rest = reading.history(bob.id, chat, {"after_seq": str(first["messages"][-1]["seq"])},
                             world.ctx)

    assert [m["body"] for m in first["messages"]] == ["later 0", "later 1"]
    assert first["has_more"] is True
    assert [m["body"] for m in rest["messages"]] == ["later 2", "later 3"]
    assert rest["has_more"] is False


def test_a_ttl_change_applies_to_messages_sent_afterwards(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob, ttl_seconds=3600)
    world.send(phone, chat, body="before")

    conversations.update(alice.id, chat, {"ttl_seconds": 60}, world.ctx)
    world.send(phone, chat, body="after")

    before, after = world.received(phone, "sent")
    assert before["expires_at"] - before["created_at"] == 3600 * 1000
    assert after["expires_at"] - after["created_at"] == 60 * 1000
