"""The expiry engine empties a backlog batch by batch and leaves live messages alone."""

from __future__ import annotations

from chalicelib.ids import new_id
from chalicelib.services.expiry import purge_expired
from tests.integration.test_storage_contract import NOW, make_conversation, make_user


def insert_messages(db, chat, sender, expiries):
    def insert(txn):
        txn.executemany(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, sender_device_id,"
            " client_msg_id, body, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(new_id(), chat.id, seq, sender.id, "dev", f"c{seq:08d}", "x", NOW, expires_at)
             for seq, expires_at in enumerate(expiries, start=1)],
        )

    db.run_transaction("test.insert_messages", insert)


def count(db):
    def count_txn(txn):
        txn.execute("SELECT COUNT(*) AS n FROM messages")
        return txn.fetchone()["n"]

    return db.run_read("t", count_txn)


def test_a_backlog_larger_than_a_batch_is_cleared_across_batches(db, clock):
    alice = make_user(db, "+14155550101")
    chat = make_conversation(db, alice)
    insert_messages(db, chat, alice, [clock.now_ms() - 1] * 2_500 + [clock.now_ms() + 1] * 7)

    report = purge_expired(db=db, clock=clock, batch_size=1_000)

    assert (report.deleted, report.batches, report.finished) == (2_500, 3, True)
    assert count(db) == 7


def test_a_second_run_with_nothing_to_do_deletes_nothing(db, clock):
    alice = make_user(db, "+14155550101")
    chat = make_conversation(db, alice)
    insert_messages(db, chat, alice, [clock.now_ms() - 1] * 3)
    purge_expired(db=db, clock=clock)

    report = purge_expired(db=db, clock=clock)

    assert (report.deleted, report.batches, report.finished) == (0, 0, True)


def test_the_engine_stops_when_its_time_budget_is_spent(db, clock):
    alice = make_user(db, "+14155550101")
    chat = make_conversation(db, alice)
    insert_messages(db, chat, alice, [clock.now_ms() - 1] * 10)

    report = purge_expired(db=db, clock=clock, time_budget_s=0)

    assert (report.deleted, report.finished) == (0, False)
    assert count(db) == 10
