"""The Database runs named transactions, rolls back failures and survives a dropped connection."""

from __future__ import annotations

import json

import pytest

from chalicelib.errors import Conflict
from chalicelib.ids import new_id
from chalicelib.storage import conversations, users
from chalicelib.storage.conversations import Conversation, Participant
from chalicelib.storage.database import Packed
from chalicelib.storage.users import User
from tests.support.concurrency import run_in_threads
from tests.support.round_trips import counting_round_trips

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


# --- statements queued to travel together ------------------------------------------------


def insert_user_later(txn, user: User) -> None:
    txn.later("INSERT INTO users (id, phone, created_at) VALUES (%s, %s, %s)",
              (user.id, user.phone, user.created_at))


def count_users(db, phone: str) -> int:
    def count(txn) -> int:
        txn.execute("SELECT COUNT(*) AS n FROM users WHERE phone = %s", (phone,))
        return txn.fetchone()["n"]

    return db.run_read("t", count)


def test_queued_statements_go_with_the_next_one_in_a_single_round_trip(mysql_db):
    mysql_db.run_read("t", connection_id)  # connect first: the handshake is not counted

    def read_twice(txn):
        first = txn.later("SELECT 1 AS one")
        txn.execute("SELECT 2 AS two")
        return first.value.rows, txn.fetchone()

    with counting_round_trips() as trips:
        first_rows, second_row = mysql_db.run_read("t", read_twice)

    assert (first_rows, second_row) == ([{"one": 1}], {"two": 2})
    assert trips.total == 1


def test_queued_writes_are_sent_with_the_commit(db):
    user = User(new_id(), "+14155550111", NOW, NOW, None)
    db.run_transaction("t", lambda txn: None)  # connect first: the handshake is not counted

    with counting_round_trips() as trips:
        db.run_transaction("t", insert_user_later, user)

    assert count_users(db, user.phone) == 1
    if db.engine.name == "mysql":
        assert trips.total == 1  # the INSERT and the COMMIT together


def test_a_queued_statement_that_fails_commits_nothing_of_the_transaction(db):
    taken = User(new_id(), "+14155550112", NOW, NOW, None)
    db.run_transaction("t", users.insert_user, taken)
    fresh = User(new_id(), "+14155550113", NOW, NOW, None)

    def two_inserts(txn):
        insert_user_later(txn, fresh)
        insert_user_later(txn, User(new_id(), taken.phone, NOW, NOW, None))  # phone is unique

    with pytest.raises(Conflict):
        db.run_transaction("t", two_inserts)

    assert count_users(db, fresh.phone) == 0


def test_reading_a_queued_answer_early_sends_the_queue(db):
    def read_early(txn):
        answer = txn.later("SELECT 3 AS three")
        return answer.value.rows

    assert db.run_read("t", read_early) == [{"three": 3}]


def test_queued_values_are_escaped_not_formatted_into_the_sql(db):
    hostile = "'); DROP TABLE users; --"

    def echo(txn):
        answer = txn.later("SELECT %s AS text", (hostile,))
        txn.execute("SELECT COUNT(*) AS n FROM users")
        return answer.value.rows[0]["text"], txn.fetchone()["n"]

    text, users_before = db.run_read("t", echo)

    assert text == hostile
    assert db.run_read("t", echo)[1] == users_before  # the table is still there


def test_a_packed_select_list_reads_back_under_its_names_with_flags_as_booleans(db):
    columns = Packed(text="%s", number="%s", nothing="NULL",
                     exists="EXISTS (SELECT 1)",
                     missing="EXISTS (SELECT 1 FROM users WHERE 1 = 0)",
                     stored_zero="%s", flags=["exists", "missing", "stored_zero"])

    def read(txn):
        txn.execute(f"SELECT {columns.sql}", ("it's \"quoted\" ✓", 1_767_225_600_000, 0))
        return columns.row(txn.fetchone())

    assert db.run_read("t", read) == {"text": "it's \"quoted\" ✓", "number": 1_767_225_600_000,
                                      "nothing": None, "exists": True, "missing": False,
                                      "stored_zero": False}


@pytest.mark.parametrize("rendered", [False, 0, "0", True, 1, "1"])
def test_a_packed_flag_is_a_boolean_however_the_server_rendered_it(rendered):
    # MariaDB renders some EXISTS inside JSON_ARRAY as the string "0", which is truthy.
    columns = Packed(flag="f", flags=["flag"])

    row = columns.row({"packed": json.dumps([rendered])})

    assert row == {"flag": rendered in (True, 1, "1")}


@pytest.mark.parametrize("kept", [[1, 2, 3], [2], []])
def test_an_aggregated_packed_read_returns_every_row_in_one(db, kept):
    columns = Packed(number="t.n", word="t.word")
    in_list = ", ".join(["%s"] * len(kept)) or "NULL"

    def read(txn):
        txn.execute(f"SELECT {columns.aggregated(txn.engine)} FROM (SELECT 1 AS n, 'one' AS word"
                    " UNION ALL SELECT 2, 'two' UNION ALL SELECT 3, 'three') t"
                    f" WHERE t.n IN ({in_list})", kept)
        rows = txn.fetchall()
        return len(rows), columns.aggregated_values(rows[0]["packed"])

    result_rows, values = db.run_read("t", read)

    words = {1: "one", 2: "two", 3: "three"}
    assert result_rows == 1
    assert sorted(values) == [[n, words[n]] for n in kept]


def statements_sent(db, func):
    """What `func(txn)` returned, and the statements the engine was given to run."""
    sent = []
    run_statements = db.engine.run_statements

    def recording(cur, statements, results):
        sent.extend(sql for sql, _ in statements)
        return run_statements(cur, statements, results)

    db.engine.run_statements = recording
    try:
        return db.run_read("t", func), sent
    finally:
        del db.engine.run_statements


def test_one_value_reads_queued_together_go_as_one_statement_and_each_gets_its_value(db):
    def three_values(txn):
        first = txn.later_value("SELECT %s AS a", ("one",))
        missing = txn.later_value("SELECT 2 AS b FROM users WHERE id = %s", ("nobody",))
        third = txn.later_value("SELECT %s + 1 AS c", (2,))
        return first.value, missing.value, third.value

    values, sent = statements_sent(db, three_values)

    assert values == ("one", None, 3)
    assert len(sent) == 1 and sent[0].startswith("SELECT (SELECT")


def test_a_one_value_read_alone_or_between_other_statements_is_sent_as_it_is(db):
    def interleaved(txn):
        alone = txn.later_value("SELECT %s AS a", ("alone",))
        other = txn.later("SELECT 5 AS five")
        missing = txn.later_value("SELECT 2 AS b FROM users WHERE id = %s", ("nobody",))
        txn.execute("SELECT 6 AS six")
        return alone.value, other.value.rows, missing.value, txn.fetchone()

    values, sent = statements_sent(db, interleaved)

    assert values == ("alone", [{"five": 5}], None, {"six": 6})
    assert len(sent) == 4 and not any(sql.startswith("SELECT (") for sql in sent)
