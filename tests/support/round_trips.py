"""Counting database round trips: every request PyMySQL sends to the server (a query, a batch
of statements sent as one, a COMMIT) is one round trip; reading a batch's later results is not."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest.mock import patch

from pymysql.connections import Connection


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
