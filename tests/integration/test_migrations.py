"""Migrations apply on an empty database, re-apply as a no-op, and build the documented keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.config import parse_database_url
from chalicelib.storage.engines import create_engine
from chalicelib.storage.migrate import available_migrations, latest_version, migrate


def test_migrations_apply_on_empty_mysql_database_then_reapply_as_no_op(
    mysql_server, empty_mysql_database
):
    engine = create_engine(parse_database_url(mysql_server.url(empty_mysql_database)))

    first = migrate(engine)
    second = migrate(engine)

    assert first == [m.version for m in available_migrations()]
    assert second == []
    with mysql_server.connect(empty_mysql_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [row["version"] for row in cur.fetchall()] == first


def test_migrations_apply_on_empty_sqlite_file_then_reapply_as_no_op(tmp_path):
    engine = create_engine(parse_database_url(f"sqlite:///{tmp_path / 'fresh.db'}"))

    assert migrate(engine) == [m.version for m in available_migrations()]
    assert migrate(engine) == []


def test_mysql_schema_has_the_documented_unique_keys_and_expiry_index(
    mysql_server, mysql_database
):
    with mysql_server.connect(mysql_database) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME AS tbl, INDEX_NAME AS idx, NON_UNIQUE AS non_unique,"
            " GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) AS cols"
            " FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s"
            " GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE",
            (mysql_database,),
        )
        indexes = {(r["tbl"], r["cols"]): r["non_unique"] == 0 for r in cur.fetchall()}

    assert indexes[("messages", "conversation_id,seq")] is True
    assert indexes[("idempotency_keys", "sender_id,client_msg_id")] is True
    assert ("messages", "expires_at") in indexes
    assert indexes[("users", "phone")] is True
    assert indexes[("conversations", "direct_key")] is True


def test_sqlite_schema_has_the_documented_unique_keys_and_expiry_index(sqlite_db):
    def indexes(txn, table):
        txn.execute(f"PRAGMA index_list({table})")
        found = {}
        for index in txn.fetchall():
            txn.execute(f"PRAGMA index_info({index['name']})")
            columns = ",".join(col["name"] for col in txn.fetchall())
            found[columns] = bool(index["unique"])
        return found

    messages = sqlite_db.run_read("t", indexes, "messages")
    idempotency = sqlite_db.run_read("t", indexes, "idempotency_keys")

    assert messages["conversation_id,seq"] is True
    assert messages["expires_at"] is False
    assert idempotency["sender_id,client_msg_id"] is True


def test_mysql_tables_compare_strings_byte_for_byte_in_utf8mb4(mysql_server, mysql_database):
    with mysql_server.connect(mysql_database) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME AS tbl, TABLE_COLLATION AS coll FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = %s",
            (mysql_database,),
        )
        collations = {row["tbl"]: row["coll"] for row in cur.fetchall()}

    assert collations["messages"] == "utf8mb4_bin"
    assert set(collations.values()) == {"utf8mb4_bin"}


def test_mysql_collation_is_set_by_the_runner_even_on_a_latin1_database(mysql_server):
    name = f"ephemera_latin1_{latest_version()}"
    with mysql_server.connect("mysql") as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET latin1")
    try:
        migrate(create_engine(parse_database_url(mysql_server.url(name))))
        with mysql_server.connect(name) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_COLLATION AS coll FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'messages'",
                (name,),
            )
            assert cur.fetchone()["coll"] == "utf8mb4_bin"
    finally:
        mysql_server.drop_database(name)


def test_a_misnamed_migration_file_is_refused(tmp_path: Path):
    (tmp_path / "202611250300_ok.sql").write_text("CREATE TABLE a (id INTEGER);\n")
    (tmp_path / "add_things.sql").write_text("CREATE TABLE b (id INTEGER);\n")

    with pytest.raises(ValueError, match="add_things.sql"):
        available_migrations(tmp_path)


def test_statements_split_on_semicolons_at_line_ends_and_skip_comment_lines(tmp_path: Path):
    path = tmp_path / "202611250300_two.sql"
    path.write_text("-- a comment; not a statement\nCREATE TABLE a (\n id INTEGER\n);\n"
                    "CREATE INDEX a_id ON a (id);\n")

    (migration,) = available_migrations(tmp_path)

    assert migration.statements() == ["CREATE TABLE a (\n id INTEGER\n)",
                                      "CREATE INDEX a_id ON a (id)"]


def test_the_migrate_command_applies_then_reports_nothing_to_do(tmp_path):
    env = {**os.environ, "STAGE": "local", "JWT_SECRET": "j" * 40,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}

    def run() -> str:
        return subprocess.run([sys.executable, "-m", "chalicelib.storage.migrate"], env=env,
                              check=True, capture_output=True, text=True).stdout

    assert run().startswith(f"applied {len(available_migrations())} migration(s)")
    assert run().startswith("applied 0 migration(s): none; schema at " + latest_version())


def test_the_deployed_migrate_function_upgrades_then_has_nothing_to_do(
    monkeypatch, mysql_server, empty_mysql_database
):
    from chalice.test import Client

    from app import app
    from chalicelib import bootstrap

    monkeypatch.setenv("STAGE", "local")
    monkeypatch.setenv("JWT_SECRET", "j" * 40)
    monkeypatch.setenv("DATABASE_URL", mysql_server.url(empty_mysql_database))
    bootstrap.reset()
    try:
        with Client(app, stage_name="local") as client:
            first = client.lambda_.invoke("migrate", {}).payload
            second = client.lambda_.invoke("migrate", {}).payload
    finally:
        bootstrap.reset()

    assert first["applied"] == [m.version for m in available_migrations()]
    assert second == {"applied": [], "schema_version": latest_version(),
                      "binlog_retention": "not managed here"}  # MariaDB: no RDS procedure


def test_on_rds_the_upgrade_sets_the_shortest_binlog_retention(mysql_server, mysql_database):
    """RDS MySQL's `mysql.rds_set_configuration` is stood in for by a procedure of the same
    name that records its arguments, so the real CALL statement runs."""
    from chalicelib.storage.database import Database
    from chalicelib.storage.migrate import upgrade

    with mysql_server.connect("mysql") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS test.rds_configuration_calls"
                    " (name VARCHAR(64), value VARCHAR(64))")
        cur.execute("DELETE FROM test.rds_configuration_calls")
        cur.execute("CREATE OR REPLACE PROCEDURE mysql.rds_set_configuration("
                    "IN name VARCHAR(64), IN value INT)"
                    " INSERT INTO test.rds_configuration_calls VALUES (name, value)")
    db = Database(create_engine(parse_database_url(mysql_server.url(mysql_database))))
    try:
        report = upgrade(db)
        with mysql_server.connect("mysql") as conn, conn.cursor() as cur:
            cur.execute("SELECT name, value FROM test.rds_configuration_calls")
            calls = cur.fetchall()
    finally:
        db.close()
        with mysql_server.connect("mysql") as conn, conn.cursor() as cur:
            cur.execute("DROP PROCEDURE IF EXISTS mysql.rds_set_configuration")
            cur.execute("DROP TABLE IF EXISTS test.rds_configuration_calls")

    assert report["binlog_retention"] == "shortest"
    assert calls == [{"name": "binlog retention hours", "value": None}]
