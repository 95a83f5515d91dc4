"""Counting database work: round trips (every request PyMySQL sends to the server: a query, a
batch of statements sent as one, a COMMIT; reading a batch's later results is not one), and the
rows MariaDB's handlers read for a query."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest.mock import patch

from pymysql.connections import Connection

from chalicelib.storage.database import Database, Transaction


@dataclass
class RoundTrips:
    total: int = 0


@contextmanager
def counting_round_trips() -> Iterator[RoundTrips]:
    """Count the round trips of every PyMySQL connection in this process while inside."""
    counter = RoundTrips()
    send = Connection._execute_command

    def counted(connection: Connection, command: int, sql: str | bytes) -> object:
        counter.total += 1
        return send(connection, command, sql)

    with patch.object(Connection, "_execute_command", counted):
        yield counter


def rows_read(db: Database, read: Callable[[Transaction], object]) -> int:
    """Index and table rows MariaDB's handlers read for `read` (its session counters before
    and after, less what reading the counters itself costs)."""

    def handler_reads(txn: Transaction) -> int:
        txn.execute("SHOW SESSION STATUS LIKE 'Handler_read%%'")
        return sum(int(row["Value"]) for row in txn.fetchall())

    def measured(txn: Transaction) -> int:
        before = handler_reads(txn)
        read(txn)
        after = handler_reads(txn)
        return (after - before) - (handler_reads(txn) - after)

    return db.run_read("rows_read", measured)
