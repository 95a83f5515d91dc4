"""The Database runs named transactions, rolls back failures and survives a dropped connection."""

from __future__ import annotations

import pytest

from chalicelib.ids import new_id
from chalicelib.storage import conversations, users
from chalicelib.storage.conversations import Conversation, Participant
from chalicelib.storage.users import User
from tests.support.concurrency import run_in_threads

NOW = 1_767_225_600_000


def connection_id(txn) -> int:
    txn.execute("SELECT CONNECTION_ID() AS id")
    return txn.fetchone()["id"]


def test_a_killed_server_connection_is_replaced_on_the_next_call(mysql_db, mysql_server,
                                                                 mysql_database):
    before = mysql_db.run_read("t", connection_id)
    with mysql_server.connect(mysql_database) as admin, admin.cursor() as cur:
        cur.execute("KILL %s", (before,))

    after = mysql_db.run_read("t", connection_id)

    assert after != before
    assert mysql_db.run_read("t", connection_id) == after


def test_a_write_after_the_connection_was_killed_lands_once(mysql_db, mysql_server,
                                                           mysql_database):
    with mysql_server.connect(mysql_database) as admin, admin.cursor() as cur:
        cur.execute("KILL %s", (mysql_db.run_transaction("t", connection_id),))
    user = User(new_id(), "+14155550101", NOW, NOW, None)

    mysql_db.run_transaction("t", users.insert_user, user)

    with mysql_server.connect(mysql_database) as admin, admin.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM users WHERE phone = %s", (user.phone,))
        assert cur.fetchone()["n"] == 1


def test_reads_and_writes_use_their_own_connections(mysql_db):
    assert mysql_db.run_read("t", connection_id) != mysql_db.run_transaction("t", connection_id)


def test_a_failing_transaction_leaves_nothing_behind(db):
    user = User(new_id(), "+14155550101", NOW, NOW, None)

    def insert_then_fail(txn):
        users.insert_user(txn, user)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.run_transaction("t", insert_then_fail)

    assert db.run_read("t", users.get_user, user.id) is None


def test_concurrent_seq_allocation_has_no_gap_and_no_duplicate(mysql_db):
    alice = User(new_id(), "+14155550101", NOW, NOW, None)
    chat = Conversation(new_id(), "group", None, None, 60, 0, alice.id, NOW, NOW, NOW)

    def create(txn):
        users.insert_user(txn, alice)
        conversations.insert_conversation(txn, chat)
        conversations.insert_participants(txn, [Participant(chat.id, alice.id, "owner", 0, 0, 0,
                                                            NOW)])

    mysql_db.run_transaction("t", create)

    def allocate_many(_: int) -> list[int]:
        return [mysql_db.run_transaction("t", conversations.allocate_seq, chat.id, alice.id, NOW)
                for _ in range(25)]

    seqs = [seq for batch in run_in_threads(8, allocate_many) for seq in batch]

    assert sorted(seqs) == list(range(1, 201))
