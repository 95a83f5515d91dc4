"""SQLite write transactions take turns through a queue of their own (an flock beside the
database file), not through SQLite's busy wait, whose growing sleeps were the local stack's
latency tail. The queue is held from BEGIN IMMEDIATE to COMMIT or ROLLBACK, and only then."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading

import pytest

from chalicelib.storage.engines import sqlite as sqlite_engine


def queue_is_free(sqlite_db) -> bool:
    """Whether a newcomer could take the writers' queue now (without waiting)."""
    fd = os.open(f"{sqlite_db.engine._path}-writers", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def queue_free_while(run, sqlite_db, sql: str) -> bool:
    """Whether the queue was free while `run` (the database's run_transaction or run_read)
    ran `sql` in its transaction."""
    seen = []

    def work(txn):
        txn.execute(sql)
        seen.append(queue_is_free(sqlite_db))

    run("test.work", work)
    return seen[0]


def user_count(sqlite_db) -> int:
    def count(txn):
        txn.execute("SELECT COUNT(*) AS n FROM users")
        return txn.fetchone()["n"]

    return sqlite_db.run_read("test.count", count)


def test_a_write_transaction_holds_the_queue_until_its_commit(sqlite_db):
    held_inside = not queue_free_while(
        sqlite_db.run_transaction, sqlite_db,
        "INSERT INTO users (id, phone, created_at) VALUES ('u1', '+1415', 1)")

    assert held_inside
    assert queue_is_free(sqlite_db)
    assert user_count(sqlite_db) == 1


def test_a_failed_write_transaction_gives_the_queue_back(sqlite_db):
    def fail(txn):
        txn.execute("INSERT INTO users (id, phone, created_at) VALUES ('u1', '+1415', 1)")
        raise RuntimeError("the transaction function failed")

    with pytest.raises(RuntimeError):
        sqlite_db.run_transaction("test.fail", fail)

    assert queue_is_free(sqlite_db)
    assert user_count(sqlite_db) == 0


def test_reads_never_take_the_queue(sqlite_db):
    assert queue_free_while(sqlite_db.run_read, sqlite_db, "SELECT COUNT(*) AS n FROM users")


def test_a_waiting_writer_goes_in_once_the_holder_commits(sqlite_db):
    holder_inside, release_holder = threading.Event(), threading.Event()
    order = []

    def hold(txn):
        txn.execute("INSERT INTO users (id, phone, created_at) VALUES ('first', '+1', 1)")
        holder_inside.set()
        release_holder.wait(10)
        order.append("first committed")

    def follow(txn):
        order.append("second began")
        txn.execute("INSERT INTO users (id, phone, created_at) VALUES ('second', '+2', 2)")

    holder = threading.Thread(target=sqlite_db.run_transaction, args=("test.hold", hold))
    holder.start()
    assert holder_inside.wait(10)
    follower = threading.Thread(target=sqlite_db.run_transaction, args=("test.follow", follow))
    follower.start()
    follower.join(0.2)
    assert follower.is_alive() and order == []  # queued behind the holder
    release_holder.set()
    holder.join(10)
    follower.join(10)

    assert order == ["first committed", "second began"]
    assert queue_is_free(sqlite_db)


def test_a_writer_that_never_lets_go_makes_the_next_fail_as_sqlite_would(sqlite_db,
                                                                         monkeypatch):
    monkeypatch.setattr(sqlite_engine, "BUSY_TIMEOUT_MS", 100)
    holder_inside, release_holder = threading.Event(), threading.Event()

    def hold(txn):
        txn.execute("INSERT INTO users (id, phone, created_at) VALUES ('first', '+1', 1)")
        holder_inside.set()
        release_holder.wait(10)

    holder = threading.Thread(target=sqlite_db.run_transaction, args=("test.hold", hold))
    holder.start()
    try:
        assert holder_inside.wait(10)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            sqlite_db.run_transaction("test.next", lambda txn: txn.execute(
                "INSERT INTO users (id, phone, created_at) VALUES ('next', '+2', 2)"))
    finally:
        release_holder.set()
        holder.join(10)
    assert queue_is_free(sqlite_db)
