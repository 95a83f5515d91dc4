"""MySQL 8 / MariaDB 10.11 through PyMySQL (production: RDS or Aurora, via RDS Proxy)."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymysql
import pymysql.cursors
from pymysql.constants import CLIENT

from chalicelib.config import DatabaseSettings
from chalicelib.storage.engines.base import Connection, Cursor, Engine, StatementResult

ER_DUP_ENTRY = 1062
ER_ACCESS_DENIED = 1045
# Codes that mean "this connection is dead": server gone away, lost connection, killed
# (MariaDB 1927), dropped for inactivity (MySQL 4031), and the client-side "not connected".
DISCONNECT_CODES = frozenset({2006, 2013, 2014, 2045, 2055, 1927, 4031})
MIGRATION_LOCK = "ephemera.migrate"


class MysqlEngine(Engine):
    name = "mysql"

    def __init__(
        self, settings: DatabaseSettings, *,
        password: Callable[[bool], str | None] | None = None,
    ) -> None:
        self._settings = settings
        # Called on every connect, so a rotated secret is picked up when a connection is replaced.
        self._password = password or (lambda fresh: settings.password)

    def connect(self, *, autocommit: bool = False) -> Connection:
        try:
            return self._connect(self._password(False), autocommit)
        except pymysql.err.OperationalError as exc:
            if _code(exc) != ER_ACCESS_DENIED:
                raise
        # RDS rotates the managed secret weekly: a password cached before that is refused
        # until the cache expires, so read the secret afresh and try once more.
        return self._connect(self._password(True), autocommit)

    def _connect(self, password: str | None, autocommit: bool) -> Connection:
        return pymysql.connect(
            host=self._settings.host,
            port=self._settings.port,
            user=self._settings.user,
            password=password or "",
            database=self._settings.name,
            charset="utf8mb4",
            autocommit=autocommit,
            cursorclass=pymysql.cursors.DictCursor,
            # Several statements in one request (`run_statements`): what keeps a send within
            # a few round trips. Every value is still escaped by the driver, never formatted in.
            client_flag=CLIENT.MULTI_STATEMENTS,
            connect_timeout=5,
            # The system's CA bundle verifies RDS Proxy's certificate and host name.
            ssl=ssl.create_default_context() if self._settings.tls else None,
            # READ COMMITTED: a statement sees what others committed before it, so the loser of
            # a unique-key race can read the winner's row in the same transaction; it also
            # takes no gap locks, which keeps the expiry engine's deletes out of the send path.
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )

    def run_statements(self, cur: Cursor, statements: Sequence[tuple[str, Sequence[Any]]],
                       results: list[StatementResult]) -> None:
        if len(statements) == 1:
            sql, params = statements[0]
            cur.execute(sql, params)
            results.append(_result_of(cur))
            return
        # The driver escapes each statement's values exactly as `execute` would; the server
        # answers with one result per statement, read in turn (an error stops the rest).
        batch = ";\n".join(cur.mogrify(sql, params or None)  # type: ignore[attr-defined]
                            for sql, params in statements)
        cur.execute(batch)
        results.append(_result_of(cur))
        for _ in statements[1:]:
            cur.nextset()
            results.append(_result_of(cur))

    def begin(self, cur: Cursor, *, write: bool) -> None:
        # Autocommit is off, so the first statement opens the transaction: an explicit BEGIN
        # would only cost a round trip (a send makes few enough as it is).
        pass

    def is_duplicate_key(self, exc: BaseException) -> bool:
        return isinstance(exc, pymysql.err.IntegrityError) and _code(exc) == ER_DUP_ENTRY

    def is_disconnect(self, exc: BaseException) -> bool:
        if isinstance(exc, pymysql.err.InterfaceError):
            return True  # PyMySQL's "(0, '')": the socket is already closed on our side
        return isinstance(exc, pymysql.err.OperationalError) and _code(exc) in DISCONNECT_CODES

    def allocate_seq(self, cur: Cursor, conversation_id: str, member_id: str,
                     now_ms: int, *, count: int = 1) -> int | None:
        # LAST_INSERT_ID(expr) hands the new value back in the OK packet (cursor.lastrowid):
        # one round trip, and no row updated when the sender is not a participant.
        cur.execute(
            "UPDATE conversations c"
            " JOIN participants p ON p.conversation_id = c.id AND p.user_id = %s"
            "  AND p.consent <> 'declined'"
            " SET c.last_seq = LAST_INSERT_ID(c.last_seq + %s), c.activity_at = %s"
            " WHERE c.id = %s",
            (member_id, count, now_ms, conversation_id),
        )
        return int(cur.lastrowid) if cur.rowcount == 1 else None

    def upsert_add(self, key: str, column: str) -> str:
        # VALUES(col), not MySQL 8's `AS new` alias: MariaDB has no such alias.
        return f"ON DUPLICATE KEY UPDATE {column} = {column} + VALUES({column})"

    def json_array_agg(self, expression: str) -> str:
        return f"JSON_ARRAYAGG({expression})"  # MariaDB 10.5+, MySQL 8.0.14+

    def octet_length(self, column: str) -> str:
        return f"LENGTH({column})"

    def is_deadlock(self, exc: BaseException) -> bool:
        return isinstance(exc, pymysql.err.OperationalError) and _code(exc) in (1213, 1205)

    def prepare_schema(self, cur: Cursor) -> None:
        # Tables inherit the database default: 4-byte UTF-8 for bodies and byte-wise
        # comparison for ids, phones and client_msg_id (as in SQLite).
        cur.execute("ALTER DATABASE CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")

    @contextmanager
    def migration_lock(self, cur: Cursor) -> Iterator[None]:
        # MySQL DDL commits implicitly, so a transaction cannot keep two migrators apart.
        cur.execute("SELECT GET_LOCK(%s, 60) AS got", (MIGRATION_LOCK,))
        if (cur.fetchone() or {}).get("got") != 1:
            raise TimeoutError("another migration holds the lock")
        try:
            yield
        finally:
            cur.execute("SELECT RELEASE_LOCK(%s)", (MIGRATION_LOCK,))
            cur.fetchall()


    def shorten_binlog_retention(self, cur: Cursor) -> bool:
        # RDS MySQL keeps binary logs (every written row, bodies included) per this setting;
        # NULL purges each as soon as backups and replicas have it. The procedure exists only
        # on RDS, so MariaDB and a plain MySQL are left as they are.
        cur.execute("SELECT COUNT(*) AS n FROM information_schema.ROUTINES"
                    " WHERE ROUTINE_SCHEMA = 'mysql' AND ROUTINE_NAME = 'rds_set_configuration'")
        if not (cur.fetchone() or {}).get("n"):
            return False
        cur.execute("CALL mysql.rds_set_configuration('binlog retention hours', NULL)")
        return True


def _result_of(cur: Cursor) -> StatementResult:
    return StatementResult(list(cur.fetchall()), cur.rowcount, cur.lastrowid)


def _code(exc: BaseException) -> int | None:
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
