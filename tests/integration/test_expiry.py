"""Ephemeral by architecture: unreadable at the instant of expiry, deleted by the engine in
batches, announced to live participants; and the housekeeping of everything else that ends."""

from __future__ import annotations

import threading

import pytest

from chalicelib.ids import new_id
from chalicelib.services import conversations, reading
from chalicelib.services.context import Context
from chalicelib.services.expiry import (
    announce,
    clear_ended_rows,
    purge_expired,
    run_cleanup,
    to_ranges,
)
from chalicelib.services.limits import NoLimits
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush


@pytest.fixture
def world(db, clock) -> World:
    push = RecordingPush()
    return World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS), push)


def insert_messages(db, conversation_id, sender_id, expiries, first_seq=1):
    def insert(txn):
        txn.executemany(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, sender_device_id,"
            " client_msg_id, body, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(new_id(), conversation_id, seq, sender_id, "dev", f"c{seq:08d}", "x", 0, expires)
             for seq, expires in enumerate(expiries, start=first_seq)],
        )
        txn.execute("UPDATE conversations SET last_seq = %s WHERE id = %s",
                    (first_seq + len(expiries) - 1, conversation_id))

    db.run_transaction("test.insert_messages", insert)


def count(db, table="messages"):
    def count_txn(txn):
        txn.execute(f"SELECT COUNT(*) AS n FROM {table}")
        return txn.fetchone()["n"]

    return db.run_read("t", count_txn)


def test_a_message_is_readable_at_9999_ms_and_by_no_api_at_10000_ms(world, clock):
    alice, bob = world.person(), world.person()
    alice_phone, bob_phone = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob, ttl_seconds=10)
    world.send(alice_phone, chat, body="ten seconds", client_msg_id="ten-secs-1")
    sent_at = clock.now_ms()

    def every_api() -> dict:
        (listed,) = conversations.list_for(bob.id, {}, world.ctx)["conversations"]
        world.frame(bob_phone, "sync", cursors={})
        (synced,) = world.last(bob_phone, "sync")["conversations"]
        world.send(alice_phone, chat, body="ten seconds", client_msg_id="ten-secs-1")
        return {
            "history": len(reading.history(bob.id, chat, {}, world.ctx)["messages"]),
            "sync": len(synced["messages"]),
            "unread_list": listed["unread_count"],
            "unread_sync": synced["unread_count"],
            "last_message": listed["last_message"] is not None,
            "retry_says_expired": world.last(alice_phone, "sent").get("expired", False),
        }

    clock.set(sent_at + 9_999)
    before = every_api()
    clock.set(sent_at + 10_000)
    after = every_api()

    assert before == {"history": 1, "sync": 1, "unread_list": 1, "unread_sync": 1,
                      "last_message": True, "retry_says_expired": False}
    assert after == {"history": 0, "sync": 0, "unread_list": 0, "unread_sync": 0,
                     "last_message": False, "retry_says_expired": True}


def test_one_run_deletes_every_expired_row_and_nothing_else(world, db, clock):
    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)
    now = clock.now_ms()
    insert_messages(db, chat, alice.id, [now - 5, now, now + 1, now - 1, now + 60_000])

    report = purge_expired(world.ctx)

    def left(txn):
        txn.execute("SELECT seq FROM messages ORDER BY seq")
        return [row["seq"] for row in txn.fetchall()]

    assert (report.deleted, report.backlog, report.lag_ms) == (3, 0, 0)
    assert db.run_read("t", left) == [3, 5]


def test_live_participants_are_told_exactly_what_went(world, db, clock):
    alice, bob = world.person(), world.person()
    alice_phone, bob_phone = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    now = clock.now_ms()
    # seqs 1-3 and 5 expire; 4 and 6 live on (a TTL was shortened in between)
    insert_messages(db, chat, alice.id, [now - 9, now - 8, now - 7, now + 9_000, now - 6,
                                         now + 9_000])
    world.forget_frames()

    announce(purge_expired(world.ctx), world.ctx)

    for phone in (alice_phone, bob_phone):
        (frame,) = world.received(phone, "expired")
        assert frame == {"type": "expired", "conversation_id": chat,
                         "ranges": [[1, 3], [5, 5]], "up_to_seq": 3, "reason": "expired"}
    assert world.last(bob_phone, "unread") == {"type": "unread", "conversation_id": chat,
                                               "count": 2}
    assert world.received(alice_phone, "unread") == []  # her own messages: her count is 0


def test_up_to_seq_is_the_last_seq_when_nothing_is_left(world, db, clock):
    alice, bob = world.person(), world.person()
    bob_phone = world.device(bob)
    chat = world.chat(alice, bob)
    insert_messages(db, chat, alice.id, [clock.now_ms() - 1] * 4)

    announce(purge_expired(world.ctx), world.ctx)

    assert world.last(bob_phone, "expired")["up_to_seq"] == 4


def test_a_backlog_larger_than_a_batch_is_cleared_across_batches(world, db, clock):
    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)
    insert_messages(db, chat, alice.id, [clock.now_ms() - 1] * 50_000 + [clock.now_ms() + 1] * 7)

    report = purge_expired(world.ctx, batch_size=2_000)
    second = purge_expired(world.ctx)

    assert (report.deleted, report.batches, report.finished) == (50_000, 25, True)
    assert count(db) == 7
    assert (second.deleted, second.batches, second.finished) == (0, 0, True)


def test_the_engine_stops_when_its_time_budget_is_spent_and_reports_the_backlog(world, db,
                                                                               clock):
    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)
    insert_messages(db, chat, alice.id, [clock.now_ms() - 30_000] * 10)

    report = purge_expired(world.ctx, time_budget_s=0)

    assert (report.deleted, report.finished, report.backlog, report.lag_ms) == (
        0, False, 10, 30_000)


def test_housekeeping_clears_what_has_ended_and_keeps_what_has_not(world, db, clock):
    now = clock.now_ms()

    def plant(txn):
        for ends, suffix in ((now - 1, "old"), (now + 60_000, "new")):
            txn.execute("INSERT INTO otp_challenges (id, phone, phone_key, code_hash,"
                        " attempts_left, created_at, expires_at, consumed_at)"
                        " VALUES (%s, '+1', 'k', 'h', 5, 0, %s, NULL)",
                        (f"otp-{suffix}", ends))
            txn.execute("INSERT INTO consumed_tickets VALUES (%s, %s)",
                        (f"ticket-{suffix}", ends - 60_000))
            txn.execute("INSERT INTO refresh_tokens VALUES (%s, 'd', 0, %s, NULL)",
                        (f"token-{suffix}", ends))
            txn.execute("INSERT INTO idempotency_keys VALUES ('u', %s, 'c', 'm', 1, 'h', 0, 0,"
                        " %s)", (f"client-{suffix}", ends))
            txn.execute("INSERT INTO rate_limit_windows VALUES (%s, 0, 1, %s)",
                        (f"bucket-{suffix}", ends))

    db.run_transaction("t", plant)

    cleared = clear_ended_rows(world.ctx)

    assert cleared == {"otp_challenges": 1, "consumed_tickets": 1, "refresh_tokens": 1,
                       "idempotency_keys": 1, "rate_limit_windows": 1}
    for table in cleared:
        assert count(db, table) == 1


def plant_windows(db, *, ended: int, live: int, now: int) -> None:
    def plant(txn):
        for index in range(ended + live):
            txn.execute("INSERT INTO rate_limit_windows VALUES (%s, 0, 1, %s)",
                        (f"bucket-{index}", now - 1 if index < ended else now + 60_000))

    db.run_transaction("t", plant)


def test_housekeeping_goes_on_batch_by_batch_until_nothing_ended_is_left(world, db, clock):
    plant_windows(db, ended=5, live=1, now=clock.now_ms())

    cleared = clear_ended_rows(world.ctx, batch_size=2, rest_ratio=0)

    assert cleared["rate_limit_windows"] == 5
    assert count(db, "rate_limit_windows") == 1


def test_housekeeping_stops_at_its_budget_and_the_next_run_goes_on(world, db, clock):
    plant_windows(db, ended=5, live=1, now=clock.now_ms())

    first = clear_ended_rows(world.ctx, batch_size=2, time_budget_s=0, rest_ratio=0)
    second = clear_ended_rows(world.ctx, batch_size=2, time_budget_s=0, rest_ratio=0)

    assert (first["rate_limit_windows"], second["rate_limit_windows"]) == (2, 2)
    assert count(db, "rate_limit_windows") == 2


def test_a_scheduled_run_sweeps_dead_connections_and_announces_offline(world, clock):
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    world.device(alice)
    clock.advance(seconds=700)
    bob_phone = world.device(bob)
    world.forget_frames()

    figures = run_cleanup(world.ctx, idle_timeout_s=600, max_connection_s=7200)

    assert figures["stale_connections"] == 1
    assert world.last(bob_phone, "presence")["online"] is False


@pytest.mark.parametrize(("seqs", "ranges"), [
    ([], []), ([4], [[4, 4]]), ([1, 2, 3, 7], [[1, 3], [7, 7]]),
    ([2, 4, 5, 6, 9, 10], [[2, 2], [4, 6], [9, 10]]),
])
def test_deleted_seqs_are_announced_as_inclusive_ranges(seqs, ranges):
    assert to_ranges(seqs) == ranges


def test_sends_during_a_large_purge_all_succeed(mysql_db, clock):
    """A real concurrency test on MariaDB: no lock-wait timeout, no deadlock, no lost send."""
    push = RecordingPush()
    world = World(Context(db=mysql_db, push=push, clock=clock, limiter=NoLimits(),
                           keys=TEST_KEYS), push)
    alice, bob = world.person(), world.person()
    old_chat, live_chat = world.chat(alice, bob), world.chat(alice, world.person())
    insert_messages(mysql_db, old_chat, alice.id, [clock.now_ms() - 1] * 60_000)
    senders = [world.device(alice) for _ in range(4)]
    world.forget_frames()
    purge_done = threading.Event()

    def purge():
        purge_expired(world.ctx, batch_size=2_000)
        purge_done.set()

    def send_many(device):
        for i in range(40):
            world.send(device, live_chat, body=f"during purge {i}")
            world.send(device, old_chat, body=f"into the purged chat {i}")

    threads = [threading.Thread(target=purge)] + [
        threading.Thread(target=send_many, args=(d,)) for d in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert purge_done.is_set()
    assert [f for _, f in push.frames if f["type"] == "error"] == []
    assert sum(1 for _, f in push.frames if f["type"] == "sent") == 4 * 80
    assert count(mysql_db) == 4 * 80
