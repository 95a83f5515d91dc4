"""bench/database_cpu.py names each statement of a round trip by its verb and its own table."""

from __future__ import annotations

from bench.database_cpu import statement_label


def test_a_select_is_named_by_its_own_table_not_a_subquerys():
    sql = ("SELECT JSON_ARRAY(k.user_id, EXISTS (SELECT 1 FROM participants o WHERE o.x = 1))"
           " AS packed FROM connections k JOIN devices d ON d.id = k.device_id WHERE k.id = %s")

    assert statement_label(sql) == "SELECT connections"


def test_writes_are_named_by_the_table_they_write():
    assert statement_label("INSERT INTO messages (id) VALUES (%s)") == "INSERT messages"
    assert statement_label("UPDATE conversations c JOIN participants p ON p.c = c.id"
                           " SET c.last_seq = 1") == "UPDATE conversations"


def test_a_statement_without_a_table_is_its_verb():
    assert statement_label("COMMIT") == "COMMIT"


def test_one_value_reads_sent_as_one_are_labelled_by_each_reads_table():
    sql = ("SELECT (SELECT JSON_ARRAYAGG(hits) FROM rate_limit_windows WHERE bucket IN (%s))"
           " AS v0, (SELECT JSON_ARRAY(k.id, (SELECT 1 FROM blocks b)) FROM connections k"
           " JOIN devices d ON d.id = k.device_id WHERE k.id = %s) AS v1")

    assert statement_label(sql) == "SELECT (rate_limit_windows, connections)"
