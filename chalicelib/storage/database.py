"""Named transactions on a cached connection that is replaced when the server dropped it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from chalicelib.errors import Conflict
from chalicelib.observability import logger
from chalicelib.storage.engines import Connection, Cursor, Engine, Row

P = ParamSpec("P")
MAX_ATTEMPTS = 3  # a reconnect (once) or a deadlock victim's rerun (twice)
T = TypeVar("T")


def placeholders(values: Sequence[Any]) -> str:
    """`%s, %s, ...`, one per value, for an `IN (...)` list: only placeholders are formatted
    into SQL, never the values."""
    return ", ".join(["%s"] * len(values))


class Transaction:
    """The cursor of one named transaction, with its engine at hand for dialect hooks."""

    def __init__(self, name: str, cursor: Cursor, engine: Engine) -> None:
        self.name = name
        self.engine = engine
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql, params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(sql, params)

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Row]:
        return list(self._cursor.fetchall())

    def close(self) -> None:
        self._cursor.close()


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
            if write:
                try:
                    connection.commit()
                except Exception as exc:
                    if self.engine.is_disconnect(exc):
                        self._discard(connection, write)
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
