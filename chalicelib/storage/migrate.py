"""Versioned SQL migrations: `python -m chalicelib.storage.migrate` applies what is missing.

Files in `migrations/` are named `YYYYMMDDHHMM_what.sql` and applied in name order, each in its
own transaction, and recorded in `schema_migrations`; running again applies nothing. A landed
migration is never edited: a change is a new file. They ship inside `chalicelib/` so a deployed
function can migrate a database that only the VPC reaches.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from chalicelib.clock import Clock, SystemClock
from chalicelib.storage.database import Database, Transaction
from chalicelib.storage.engines import Connection, Cursor, Engine

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
FILENAME = re.compile(r"^(\d{12})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    def statements(self) -> list[str]:
        """The file's statements: `;` ends one at the end of a line; `--` lines are comments."""
        lines = [
            line for line in self.path.read_text(encoding="utf-8").splitlines()
            if not line.strip().startswith("--")
        ]
        chunks = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
        return [chunk.strip() for chunk in chunks if chunk.strip()]


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, oldest first; a misnamed file is an error, not a silent skip."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = FILENAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name} is not named YYYYMMDDHHMM_what.sql")
        migrations.append(Migration(version=match.group(1), path=path))
    return migrations


def migrate(
    engine: Engine, clock: Clock | None = None, directory: Path = MIGRATIONS_DIR
) -> list[str]:
    """Apply every migration not yet recorded; return the versions applied now.

    Runs on a connection of its own, holding the engine's migration lock throughout.
    """
    clock = clock or SystemClock()
    connection = engine.connect()
    cur = connection.cursor()
    try:
        with engine.migration_lock(cur):
            engine.prepare_schema(cur)
            _in_transaction(engine, connection, _create_version_table)
            return [
                migration.version
                for migration in available_migrations(directory)
                if _in_transaction(engine, connection, _apply, migration, clock.now_ms())
            ]
    finally:
        connection.close()


def upgrade(db: Database) -> dict:
    """What a deploy runs once (the `migrate` function): every pending migration, then the
    shortest binary-log retention, so bodies do not outlive their TTL in the server's logs
    (binlogs hold every row written). Idempotent; returns what it did."""
    applied = migrate(db.engine)
    shortened = db.run_transaction("migrate.binlog_retention", _shorten_binlog_retention)
    return {"applied": applied, "schema_version": current_version(db),
            "binlog_retention": "shortest" if shortened else "not managed here"}


def _shorten_binlog_retention(txn: Transaction) -> bool:
    return txn.engine.shorten_binlog_retention(txn)


def current_version(db: Database) -> str | None:
    """The newest applied version, or None on an empty database."""
    return db.run_read("migrate.current_version", _current_version_txn)


def latest_version(directory: Path = MIGRATIONS_DIR) -> str:
    return available_migrations(directory)[-1].version


def _in_transaction(
    engine: Engine, connection: Connection, func: Callable[..., T], *args: object
) -> T:
    cur = connection.cursor()
    engine.begin(cur, write=True)
    try:
        result = func(cur, *args)
    except Exception:
        connection.rollback()
        raise
    connection.commit()
    return result


def _create_version_table(cur: Cursor) -> None:
    cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version VARCHAR(12) NOT NULL PRIMARY KEY,"
        " applied_at BIGINT NOT NULL)"
    )


def _apply(cur: Cursor, migration: Migration, now_ms: int) -> bool:
    # Checked inside the write transaction: a second migrator sees the first one's record.
    cur.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (migration.version,))
    if cur.fetchone() is not None:
        return False
    for statement in migration.statements():
        cur.execute(statement)
    cur.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
        (migration.version, now_ms),
    )
    return True


def _current_version_txn(cur: Cursor) -> str | None:
    cur.execute("SELECT MAX(version) AS version FROM schema_migrations")
    row = cur.fetchone()
    return row["version"] if row else None


def main() -> int:
    from chalicelib import bootstrap

    report = upgrade(bootstrap.get_db())
    applied = report["applied"]
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none'}; "
          f"schema at {report['schema_version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
