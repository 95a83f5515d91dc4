"""Shared fixtures: a throwaway MariaDB database per run, fresh SQLite files, fixed clocks.

MariaDB is not optional: without a reachable server the run stops with an error (never a skip).
Tables are emptied before each test instead of rolling back, because the code under test
commits its own transactions.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from chalicelib import bootstrap
from chalicelib.clock import FixedClock
from chalicelib.config import DatabaseSettings, parse_database_url
from chalicelib.storage.database import Database
from chalicelib.storage.engines import create_engine
from chalicelib.storage.migrate import migrate
from tests.support import log_scan
from tests.support.log_scan import (  # noqa: F401 - hooks of the log scan, run with every run
    pytest_configure,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)
from tests.support.management_api import RecordingManagementApi

# Chalice's WebSocket handlers need a region; boto3 clients need (dummy) credentials.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

# The server, not a database: each run makes its own database on it and drops it at the end.
MYSQL_SERVER_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
TEST_JWT_SECRET = "test-secret-" + "x" * 40
log_scan.add_secret(TEST_JWT_SECRET)
KEEP_TABLES = {"schema_migrations"}


def _server_settings() -> DatabaseSettings:
    return parse_database_url(MYSQL_SERVER_URL.rstrip("/") + "/mysql")


def _server_connection() -> pymysql.connections.Connection:
    settings = _server_settings()
    return pymysql.connect(
        host=settings.host, port=settings.port, user=settings.user,
        password=settings.password or "", autocommit=True, connect_timeout=5,
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        _server_connection().close()
    except pymysql.err.MySQLError as exc:
        pytest.exit(
            f"MariaDB is required for the tests and is not reachable at {MYSQL_SERVER_URL}"
            f" ({exc}). Start it (see README) or point TEST_MYSQL_URL at one.",
            returncode=1,
        )


class MysqlServer:
    """Creates and drops throwaway databases on the test server."""

    def create_database(self, prefix: str = "ephemera_test") -> str:
        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
        with _server_connection() as connection, connection.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        return name

    def drop_database(self, name: str) -> None:
        with _server_connection() as connection, connection.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def url(self, name: str) -> str:
        return f"{MYSQL_SERVER_URL.rstrip('/')}/{name}"

    def connect(self, name: str) -> pymysql.connections.Connection:
        """A plain autocommit connection, for tests that check the database with plain SQL."""
        settings = parse_database_url(self.url(name))
        return pymysql.connect(
            host=settings.host, port=settings.port, user=settings.user,
            password=settings.password or "", database=name, autocommit=True,
            cursorclass=pymysql.cursors.DictCursor, charset="utf8mb4",
        )


@pytest.fixture(scope="session")
def mysql_server() -> MysqlServer:
    return MysqlServer()


@pytest.fixture(scope="session")
def mysql_database(mysql_server: MysqlServer) -> Iterator[str]:
    """The run's migrated MariaDB database, dropped at the end of the run."""
    name = mysql_server.create_database()
    engine = create_engine(parse_database_url(mysql_server.url(name)))
    migrate(engine)
    yield name
    mysql_server.drop_database(name)


@pytest.fixture
def empty_mysql_database(mysql_server: MysqlServer) -> Iterator[str]:
    """A database with no schema at all, dropped after the test."""
    name = mysql_server.create_database("ephemera_empty")
    yield name
    mysql_server.drop_database(name)


def empty_tables(db: Database) -> None:
    """Delete every row but the schema's record (rollback-per-test cannot work: the code under
    test commits)."""

    def empty(txn) -> None:
        txn.execute("SHOW TABLES")
        for table in [next(iter(row.values())) for row in txn.fetchall()]:
            if table not in KEEP_TABLES:
                txn.execute(f"DELETE FROM `{table}`")

    db.run_transaction("test.empty_tables", empty)


@pytest.fixture
def mysql_db(mysql_server: MysqlServer, mysql_database: str) -> Iterator[Database]:
    """A `Database` on the run's MariaDB database, every table emptied first."""
    db = Database(create_engine(parse_database_url(mysql_server.url(mysql_database))))
    empty_tables(db)
    yield db
    db.close()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """A `Database` on a fresh, migrated SQLite file."""
    engine = create_engine(parse_database_url(f"sqlite:///{tmp_path / 'ephemera.db'}"))
    migrate(engine)
    db = Database(engine)
    yield db
    db.close()


@pytest.fixture(params=["mysql", "sqlite"])
def db(request: pytest.FixtureRequest) -> Database:
    """The storage contract runs on both engines: each test taking `db` runs twice."""
    return request.getfixturevalue(f"{request.param}_db")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def app_env(
    monkeypatch: pytest.MonkeyPatch, mysql_server: MysqlServer, mysql_database: str,
    mysql_db: Database,
) -> Iterator[str]:
    """Environment for invoking `app.py` against the run's MariaDB database (stage local)."""
    monkeypatch.setenv("STAGE", "local")
    monkeypatch.setenv("DATABASE_URL", mysql_server.url(mysql_database))
    monkeypatch.setenv("JWT_SECRET", TEST_JWT_SECRET)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "EphemeraTest")
    bootstrap.reset()
    yield mysql_database
    bootstrap.reset()


@pytest.fixture
def client(app_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`app.py` through Chalice's test client (stage local) on the run's database. Pushes and
    tickets name a closed port: a module whose tests read pushes overrides this fixture."""
    from chalice.test import Client

    from app import app

    monkeypatch.setenv("WS_PUBLIC_URL", "ws://127.0.0.1:9/ws")
    monkeypatch.setenv("WS_MANAGEMENT_ENDPOINT", "http://127.0.0.1:9/local")
    bootstrap.reset()
    with Client(app, stage_name="local") as test_client:
        yield test_client


@pytest.fixture
def management_api() -> Iterator[RecordingManagementApi]:
    """A recording stand-in for API Gateway's management API on a local port."""
    api = RecordingManagementApi().start()
    yield api
    api.stop()


@pytest.fixture
def log_lines(capsys) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """What the process writes as JSON lines, parsed, in order: the powertools logger's lines
    and the invocation records metrics print (observability.log_invocation), both sent to
    stdout as in Lambda. Call it to get the lines so far."""
    from chalicelib.observability import logger

    handler = logger.registered_handler
    original = handler.setStream(_CurrentStdout())
    logger.clear_state()
    written = io.StringIO()

    def lines() -> list[dict[str, Any]]:
        written.write(capsys.readouterr().out)
        return [json.loads(line) for line in written.getvalue().splitlines()
                if line.startswith("{")]

    yield lines
    lines()
    log_scan.add_log_text("the log_lines fixture", written.getvalue())
    handler.setStream(original)
    logger.clear_state()


class _CurrentStdout(io.TextIOBase):
    """Whatever `sys.stdout` is at each write (pytest swaps it between a test's phases)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()
