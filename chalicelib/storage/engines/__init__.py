"""Pick the engine for a database URL's settings."""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.config import DatabaseSettings
from chalicelib.storage.engines.base import Connection, Cursor, Engine, Row, StatementResult

__all__ = ["Connection", "Cursor", "Engine", "Row", "StatementResult", "create_engine"]


def create_engine(
    settings: DatabaseSettings, *, password: Callable[[bool], str | None] | None = None
) -> Engine:
    """The engine for `settings`; imports only the driver it needs (cold starts).
    `password(fresh)` gives the password, bypassing any cache when `fresh`."""
    if settings.engine == "mysql":
        from chalicelib.storage.engines.mysql import MysqlEngine

        return MysqlEngine(settings, password=password)
    from chalicelib.storage.engines.sqlite import SqliteEngine

    return SqliteEngine(settings)
