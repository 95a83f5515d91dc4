"""The database server's CPU per 1:1 message (the `send` and the receiver's `ack` that
bench/handler_cpu.py makes, invoked as Lambda invokes them), and where it goes: per round trip of
each action, with the statements it carries.

Each request is timed on the server: before and after it, this reads how long the server thread
that serves the connection has been on a CPU (Linux's /proc/<pid>/task/<tid>/schedstat, in
nanoseconds). MariaDB names that thread in its process list (`TID`); MySQL keeps it in
performance_schema, so this runs on MariaDB. The whole server's CPU over the same messages
(background threads included: the redo log's writer, purge) is printed beside it.

Why it matters: in the ladder, the database server shares the machine's two cores with the
stack, and a message costs it about as much CPU as the handlers spend.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cpu import cpu_seconds, database_server_pid
from bench.handler_cpu import OneToOneChat, warmed_up_chat
from bench.quick import sized
from bench.report import emit
from chalicelib.storage.engines.mysql import MysqlEngine

MESSAGES = sized(1_000, 20)
WARM_UP = sized(100, 5)
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", re.IGNORECASE)


class ServerThreads:
    """CPU time of the MariaDB server threads behind client connections."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._threads: dict[int, int] = {}  # id(client connection) -> server thread id

    def cpu_ns(self, connection: Any) -> int:
        thread = self._threads.get(id(connection))
        if thread is None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT TID AS tid FROM information_schema.PROCESSLIST"
                               " WHERE ID = CONNECTION_ID()")
                thread = self._threads[id(connection)] = int(cursor.fetchone()["tid"])
        schedstat = Path(f"/proc/{self.server_pid}/task/{thread}/schedstat").read_text()
        return int(schedstat.split()[0])


def statement_label(sql: str) -> str:
    """`SELECT connections`, `INSERT rate_limit_windows`, `COMMIT`: the verb and the table of
    the statement itself (a subquery's FROM inside the select list does not count). One-value
    reads sent as one (`SELECT (...) AS v0, (...) AS v1`) read as `SELECT (t0, t1)`."""
    verb = sql.split(None, 1)[0].upper()
    depth, top_level, first_level = 0, [], []
    for character in sql:
        depth += character == "("
        top_level.append(character if depth == 0 else " ")
        first_level.append(character if depth == 1 else " ")
        depth -= character == ")"
    table = _TABLE.search("".join(top_level))
    if table:
        return f"{verb} {table.group(1)}"
    merged = _TABLE.findall("".join(first_level))
    return f"{verb} ({', '.join(merged)})" if merged else verb


@dataclass
class Trip:
    """One round trip of an action, over all the messages measured."""

    variants: list[str] = field(default_factory=list)  # its statements' labels, as they varied
    times: int = 0
    statements: int = 0
    server_ns: int = 0


class RoundTrips:
    """Server CPU per (action, its n-th round trip), while `timing()` is on."""

    def __init__(self, threads: ServerThreads) -> None:
        self.threads = threads
        self.action = ""
        self._index = 0
        self.trips: dict[tuple[str, int], Trip] = {}

    def begin(self, action: str) -> None:
        self.action, self._index = action, 0

    @contextmanager
    def timing(self) -> Iterator[None]:
        original = MysqlEngine.run_statements

        def timed(engine: MysqlEngine, cursor: Any, statements: Sequence[tuple[str, Any]],
                  results: list[Any]) -> None:
            before = self.threads.cpu_ns(cursor.connection)
            try:
                original(engine, cursor, statements, results)
            finally:
                self._record(statements, self.threads.cpu_ns(cursor.connection) - before)

        MysqlEngine.run_statements = timed  # type: ignore[method-assign]
        try:
            yield
        finally:
            MysqlEngine.run_statements = original  # type: ignore[method-assign]

    def _record(self, statements: Sequence[tuple[str, Any]], spent_ns: int) -> None:
        self._index += 1
        trip = self.trips.setdefault((self.action, self._index), Trip())
        labels = " + ".join(statement_label(sql) for sql, _ in statements)
        if labels not in trip.variants:  # a round trip that varies (a touch due)
            trip.variants.append(labels)
        trip.times += 1
        trip.statements += len(statements)
        trip.server_ns += spent_ns


def measure(chat: OneToOneChat, trips: RoundTrips, server_pid: int,
            messages: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    actions: dict[str, Callable[[], None]] = {"send": chat.send, "ack": chat.ack}
    server_before = cpu_seconds(server_pid)
    with trips.timing():
        for _ in range(messages):
            for action, act in actions.items():
                trips.begin(action)
                act()
    whole_server_ms = (cpu_seconds(server_pid) - server_before) * 1000 / messages
    threads_total_ns = sum(trip.server_ns for trip in trips.trips.values()) or 1
    rows = [{"action": action, "round_trip": index, "statements": " | ".join(trip.variants),
             "times": trip.times,
             "server_us_per_message": round(trip.server_ns / 1000 / messages, 1),
             "share_pct": round(100 * trip.server_ns / threads_total_ns, 1)}
            for (action, index), trip in trips.trips.items()]
    summary = {"messages": messages,
               "connection_threads_ms_per_message": round(threads_total_ns / 1e6 / messages, 3),
               "whole_server_ms_per_message": round(whole_server_ms, 3),
               "statements_per_message": round(
                   sum(trip.statements for trip in trips.trips.values()) / messages, 2)}
    return rows, summary


def main() -> None:
    server_pid = database_server_pid()
    if server_pid is None:
        emit("database server CPU per message", [{"measured": False,
                                                  "why": "no MariaDB server on this machine"}])
        return
    trips = RoundTrips(ServerThreads(server_pid))
    with warmed_up_chat(WARM_UP) as (chat, _):
        rows, summary = measure(chat, trips, server_pid, MESSAGES)
    emit("database server CPU per 1:1 message (send + ack as handler_cpu makes them, "
         "MariaDB on this machine)", [summary])
    emit("where the database server's CPU goes: per round trip (the serving thread's CPU "
         "around each request)", rows)


if __name__ == "__main__":
    main()
