"""Named transactions on a cached connection that is replaced when the server dropped it.

A transaction may also queue statements whose answers it does not need yet (`later`): they
travel with the next statement it runs, or with its COMMIT, in one round trip to the server.
That is how a send stays within a few round trips while its SQL stays one statement per
thing it does.
"""

from __future__ import annotations

import json
import operator
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from chalicelib.errors import Conflict
from chalicelib.observability import logger
from chalicelib.storage.engines import Connection, Cursor, Engine, Row, StatementResult

P = ParamSpec("P")
MAX_ATTEMPTS = 3  # a reconnect (once) or a deadlock victim's rerun (twice)
T = TypeVar("T")
COMMIT = ("COMMIT", ())


class CommitFailed(Exception):
    """The COMMIT itself failed: whether the transaction took effect is unknown."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class Later(Generic[T]):
    """A queued statement's answer, read as `value` once the statement has been sent (reading
    it earlier sends the queue at once, so a forgotten flush costs a round trip, never a
    wrong answer)."""

    txn: Transaction
    read: Callable[[StatementResult], T]
    result: StatementResult | None = field(default=None, repr=False)

    @property
    def value(self) -> T:
        if self.result is None:
            self.txn.flush()
        assert self.result is not None, "the statement was never sent"
        return self.read(self.result)


def insert_rows_later(txn: Transaction, table: str, rows: Sequence[Any]) -> None:
    """Queue one multi-row INSERT of `rows`, dataclasses whose fields are `table`'s columns
    (sent with the transaction's next statement or its COMMIT)."""
    columns = [column.name for column in fields(rows[0])]
    one_row = f"({placeholders(columns)})"
    txn.later(
        f"INSERT INTO {table} ({', '.join(columns)})"  # noqa: S608 - names from our dataclasses
        f" VALUES {', '.join([one_row] * len(rows))}",
        [getattr(row, column) for row in rows for column in columns],
    )


def placeholders(values: Sequence[Any]) -> str:
    """`%s, %s, ...`, one per value, for an `IN (...)` list: only placeholders are formatted
    into SQL, never the values."""
    return ", ".join(["%s"] * len(values))


class Packed:
    """A select list read back as one column, for the reads every frame pays for. PyMySQL
    parses each column's description (a packet of six strings) in Python for every result: on
    a message's ten results that was a fifth of the handlers' CPU. Packed, a result has one
    column, a JSON array (MySQL, MariaDB and SQLite all have JSON_ARRAY), unpacked here into a
    row under the names given: `Packed(user_id="k.user_id", ...).sql` goes in the SELECT.

    A read of many rows can come back as one: `aggregated(engine)` goes in the SELECT, an
    array of the rows' arrays, which `aggregated_values` returns (one packet and one JSON
    document instead of one per row). Either is one value, so it can be a `later_value` read.

    `flags` names the columns that are truth values, returned as bool: in a JSON array the
    server may render one as true, 1 or even "0" (MariaDB does, for some EXISTS)."""

    def __init__(self, *, flags: Sequence[str] = (), **columns: str) -> None:
        self.names = tuple(columns)
        self.array = f"JSON_ARRAY({', '.join(columns.values())})"
        self.sql = f"{self.array} AS packed"
        self._flags = [self.names.index(name) for name in flags]

    def aggregated(self, engine: Engine) -> str:
        return f"{engine.json_array_agg(self.array)} AS packed"

    def row(self, row: Row) -> Row:
        return self.unpack(row["packed"])

    def unpack(self, packed: str) -> Row:
        """One packed row (a `later_value` read's value) under its names."""
        values = json.loads(packed)
        for index in self._flags:
            values[index] = bool(int(values[index]))
        return dict(zip(self.names, values, strict=True))

    def rows(self, rows: Sequence[Row]) -> list[Row]:
        return [self.row(row) for row in rows]

    def aggregated_values(self, packed: str | None) -> list[list[Any]]:
        """The rows of an `aggregated` read, from its one value (None when nothing matched),
        each a list of its values in the columns' order, flags as the server wrote them."""
        return json.loads(packed) if packed else []


class Transaction:
    """The cursor of one named transaction, with its engine at hand for dialect hooks.

    `execute` runs a statement now (with whatever was queued before it, in the same round
    trip) and its rows are then read with `fetchone` / `fetchall`; `later` queues one, and
    `later_value` queues a read of one value.
    """

    def __init__(self, name: str, cursor: Cursor, engine: Engine) -> None:
        self.name = name
        self.engine = engine
        self._cursor = cursor
        self._queued: list[tuple[str, Sequence[Any]]] = []
        self._one_value: list[bool] = []  # per queued statement: a `later_value` read
        self._waiting: list[Later[Any]] = []
        self._last = StatementResult([], 0, None)
        self._read_at = 0
        self._sent_count = 0

    @property
    def rowcount(self) -> int:
        return self._last.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._last.lastrowid

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._last = self._send([(sql, params)])[-1]
        self._read_at = 0

    def later(self, sql: str, params: Sequence[Any] = (),
              read: Callable[[StatementResult], Any] = lambda result: result) -> Later[Any]:
        """Queue a statement to go with the next `execute`, `flush` or the COMMIT; `read`
        turns its result into the `value` of what is returned."""
        self._queued.append((sql, params))
        self._one_value.append(False)
        pending: Later[Any] = Later(self, read)
        self._waiting.append(pending)
        return pending

    def later_value(self, sql: str, params: Sequence[Any] = (),
                    read: Callable[[Any], Any] = lambda value: value) -> Later[Any]:
        """Queue a SELECT of one value (one column of at most one row: an aggregate, a row
        packed by `Packed`, read by its key); `read` gets the value, None if no row. Such
        reads queued one after another are sent as one statement, `SELECT (first) AS v0,
        (second) AS v1`: one result for the server to plan and the driver to decode instead
        of one each (PyMySQL parses every result's descriptions in Python)."""
        pending = self.later(sql, params, read=lambda result: read(_first_value(result)))
        self._one_value[-1] = True
        return pending

    def flush(self) -> None:
        """Send whatever is queued now (one round trip; nothing if the queue is empty)."""
        if self._queued:
            self._send([])

    def commit(self) -> None:
        """Send the queue and the COMMIT together. A queued statement that fails raises as
        itself (nothing was committed); a failing COMMIT raises `CommitFailed`."""
        queued = len(self._queued)
        try:
            self._send([COMMIT])
        except Exception as exc:
            # A statement error stops the server before the COMMIT; a lost connection after
            # the batch went out leaves it unknown whether the COMMIT ran.
            if self._sent_count == queued or self.engine.is_disconnect(exc):
                raise CommitFailed(exc) from exc
            raise

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        self.flush()
        self._cursor.executemany(sql, params)
        self._last = StatementResult([], self._cursor.rowcount, self._cursor.lastrowid)

    def fetchone(self) -> Row | None:
        if self._read_at >= len(self._last.rows):
            return None
        self._read_at += 1
        return self._last.rows[self._read_at - 1]

    def fetchall(self) -> list[Row]:
        rows = self._last.rows[self._read_at:]
        self._read_at = len(self._last.rows)
        return list(rows)

    def close(self) -> None:
        self._cursor.close()

    def _send(self, statements: list[tuple[str, Sequence[Any]]]) -> list[StatementResult]:
        """The queue plus `statements`, in one round trip; each queued answer gets its result
        (the ones before a failing statement too)."""
        batch, waiting, one_value = self._queued + statements, self._waiting, self._one_value
        self._queued, self._waiting, self._one_value = [], [], []
        merged = None
        if any(map(operator.and_, one_value, one_value[1:])):  # two in a row, at least
            batch, merged = _merge_value_reads(batch, one_value + [False] * len(statements))
        answers: list[StatementResult] = []
        try:
            self.engine.run_statements(self._cursor, batch, answers)
        finally:
            results = answers if merged is None else _split_value_reads(answers, merged)
            self._sent_count = len(results)
            for pending, result in zip(waiting, results, strict=False):
                pending.result = result
        return results


def _merge_value_reads(batch: list[tuple[str, Sequence[Any]]], one_value: list[bool],
                       ) -> tuple[list[tuple[str, Sequence[Any]]], list[int]]:
    """The statements to send, each run of one-value reads as one SELECT; and, per statement
    sent, how many one-value reads it carries (0: a statement sent as it was queued)."""
    sent: list[tuple[str, Sequence[Any]]] = []
    merged: list[int] = []
    run: list[tuple[str, Sequence[Any]]] = []

    def end_run() -> None:
        if len(run) == 1:
            sent.append(run[0])  # alone: as it is
            merged.append(0)
        elif run:
            columns = ", ".join(f"({sql}) AS v{index}" for index, (sql, _) in enumerate(run))
            sent.append((f"SELECT {columns}", [p for _, params in run for p in params]))
            merged.append(len(run))
        run.clear()

    for statement, is_value in zip(batch, one_value, strict=True):
        if is_value:
            run.append(statement)
        else:
            end_run()
            sent.append(statement)
            merged.append(0)
    end_run()
    return sent, merged


def _split_value_reads(answers: list[StatementResult], merged: list[int],
                       ) -> list[StatementResult]:
    """One result per statement queued: a merged read's row split into its values."""
    results = []
    for answer, values in zip(answers, merged, strict=False):
        if not values:
            results.append(answer)
            continue
        row = answer.rows[0]
        results += [StatementResult([{"value": row[f"v{index}"]}], 1, None)
                    for index in range(values)]
    return results


def _first_value(result: StatementResult) -> Any:
    """A one-value read's value: its first column, None if it found no row."""
    if not result.rows:
        return None
    row = result.rows[0]
    return row[next(iter(row.keys()))]


class Database:
    """Runs transaction functions `func(txn, ...)` and commits them explicitly.

    Two connections per container (per thread, so tests and tools may share a `Database`
    between threads): a writer whose transactions commit explicitly, and an autocommit reader
    for `run_read`, whose statements need no BEGIN or COMMIT round trip (at READ COMMITTED a
    read transaction sees each statement's own snapshot anyway). A connection found dead (idle
    timeout, failover, KILL) is replaced and the function run again once: the server rolled
    back whatever the dead one had begun, so a transaction function must only touch the
    database. The victim of a deadlock is run again too (the server rolled it back). A failure
    during COMMIT itself is ambiguous and is raised, never retried.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._all: list[Connection] = []
        self._all_lock = threading.Lock()

    def run_transaction(
        self,
        name: str,
        func: Callable[Concatenate[Transaction, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `func(txn, *args, **kwargs)` in one write transaction named `name`."""
        return self._run(name, func, True, *args, **kwargs)

    def run_read(
        self,
        name: str,
        func: Callable[Concatenate[Transaction, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run a function that only reads, on the autocommit reader connection."""
        return self._run(name, func, False, *args, **kwargs)

    def _run(self, name: str, func: Callable[..., T], write: bool, *args, **kwargs) -> T:
        started = time.perf_counter()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            connection = self._connection(write)
            txn = Transaction(name, connection.cursor(), self.engine)
            try:
                if write:
                    self.engine.begin(txn, write=True)
                result = func(txn, *args, **kwargs)
                if write:
                    txn.commit()
            except CommitFailed as failed:
                if self.engine.is_disconnect(failed.cause):
                    self._discard(connection, write)
                raise failed.cause from None
            except Exception as exc:
                if self.engine.is_disconnect(exc):
                    self._discard(connection, write)
                    if attempt == 1:
                        logger.warning("database connection lost; reconnecting",
                                       extra={"txn": name})
                        continue
                    raise
                if write:
                    _rollback_quietly(connection)
                if self.engine.is_deadlock(exc) and attempt < MAX_ATTEMPTS:
                    logger.info("deadlock victim; running again", extra={"txn": name})
                    continue
                if self.engine.is_duplicate_key(exc):
                    raise Conflict("that already exists") from exc
                raise
            logger.debug("transaction done", extra={
                "txn": name, "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            })
            return result
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every connection this object opened (end of a test, a tool, a worker)."""
        with self._all_lock:
            connections, self._all = self._all, []
        for connection in connections:
            _close_quietly(connection)
        self._local = threading.local()

    def _connection(self, write: bool) -> Connection:
        role = "writer" if write else "reader"
        connection = getattr(self._local, role, None)
        if connection is None:
            connection = self.engine.connect(autocommit=not write)
            setattr(self._local, role, connection)
            with self._all_lock:
                self._all.append(connection)
        return connection

    def _discard(self, connection: Connection, write: bool) -> None:
        setattr(self._local, "writer" if write else "reader", None)
        with self._all_lock:
            if connection in self._all:
                self._all.remove(connection)
        _close_quietly(connection)


def _rollback_quietly(connection: Connection) -> None:
    try:
        connection.rollback()
    except Exception:  # noqa: BLE001 - the original error is the one worth raising
        pass


def _close_quietly(connection: Connection) -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - closing a dead connection may fail; nothing to do
        pass
