"""The dialect seam: every difference between MySQL/MariaDB and SQLite lives in an engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol

Row = dict[str, Any]


class StatementResult(NamedTuple):
    """What one statement returned: its rows (none for a write), rows affected, and the id
    the server handed back (`LAST_INSERT_ID(expr)` on MySQL). A tuple: a message makes
    fifteen, and a frozen dataclass is three times slower to make."""

    rows: list[Row]
    rowcount: int
    lastrowid: int | None


class Cursor(Protocol):
    """The DB-API cursor subset storage code uses. SQL is written with `%s` placeholders."""

    rowcount: int
    lastrowid: int | None

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Row | None: ...
    def fetchall(self) -> Sequence[Row]: ...
    def nextset(self) -> bool | None: ...
    def close(self) -> None: ...


class Connection(Protocol):
    """The DB-API connection subset the `Database` uses."""

    def cursor(self) -> Cursor: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


class Engine(ABC):
    """One object per database kind, holding every dialect difference (Synapse's pattern)."""

    name: str

    @abstractmethod
    def connect(self, *, autocommit: bool = False) -> Connection:
        """Open a new connection with rows as dicts; autocommit off unless asked (readers)."""

    @abstractmethod
    def run_statements(self, cur: Cursor, statements: Sequence[tuple[str, Sequence[Any]]],
                       results: list[StatementResult]) -> None:
        """Run the statements in order, in one round trip where the server allows it,
        appending each one's result to `results` as it comes (so after a failure `results`
        tells how far it got). Stops at the first failing statement, raising its error."""

    @abstractmethod
    def begin(self, cur: Cursor, *, write: bool) -> None:
        """Start a transaction; `write` ones take the write lock up front where that matters."""

    @abstractmethod
    def is_duplicate_key(self, exc: BaseException) -> bool:
        """True when `exc` is a unique or primary key violation."""

    @abstractmethod
    def is_disconnect(self, exc: BaseException) -> bool:
        """True when `exc` means the connection is dead and a new one may succeed."""

    @abstractmethod
    def allocate_seq(self, cur: Cursor, conversation_id: str, member_id: str,
                     now_ms: int, *, count: int = 1) -> int | None:
        """Take the conversation's next `count` seqs if `member_id` is a participant who has
        not declined it (and note `now_ms` as its latest activity): the last of them, else
        None.

        One statement: the membership check is folded into the counter update, and the new
        value comes back without a second query.
        """

    @abstractmethod
    def upsert_add(self, key: str, column: str) -> str:
        """The clause that turns an INSERT that hits an existing `key` into `column` plus the
        inserted row's `column`."""

    def for_update(self) -> str:
        """The clause that locks the rows a SELECT reads until the transaction ends."""
        return " FOR UPDATE"

    @abstractmethod
    def json_array_agg(self, expression: str) -> str:
        """An aggregate: a JSON array of `expression` over the rows (NULL or [] for none)."""

    @abstractmethod
    def octet_length(self, column: str) -> str:
        """An SQL expression for the size of a text column in bytes of UTF-8."""

    def increment_counters(self, cur: Cursor, windows: list[tuple[str, int, int, int]]) -> None:
        """Add `hits` to `rate_limit_windows.hits` for each (bucket, window_start, expires_at,
        hits), inserting missing rows, in one statement (an upsert), queued to go with the
        transaction's next statement."""
        rows = ", ".join(["(%s, %s, %s, %s)"] * len(windows))  # only placeholders go in
        cur.later(  # type: ignore[attr-defined] - a Transaction
            "INSERT INTO rate_limit_windows (bucket, window_start, expires_at, hits)"  # noqa: S608
            f" VALUES {rows} {self.upsert_add('bucket, window_start', 'hits')}",
            [value for window in windows for value in window],
        )

    def is_deadlock(self, exc: BaseException) -> bool:
        """True when the server chose this transaction as a deadlock's victim (and rolled it
        back, so it may simply run again)."""
        return False

    def prepare_schema(self, cur: Cursor) -> None:  # noqa: B027 - optional hook
        """Run before migrations (e.g. set the database's default character set)."""

    @contextmanager
    def migration_lock(self, cur: Cursor) -> Iterator[None]:
        """Keep two migrators apart; engines whose write transactions suffice do nothing."""
        yield

    def shorten_binlog_retention(self, cur: Cursor) -> bool:
        """Keep the server's binary logs no longer than it needs them, where the server lets
        us say so (RDS); False where there is no such setting."""
        return False
