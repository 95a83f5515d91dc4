"""Readiness: the database answers and its schema is at the version this code expects."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.observability import logger
from chalicelib.services.context import Context
from chalicelib.storage.migrate import current_version, latest_version


@dataclass(frozen=True)
class Health:
    ok: bool
    schema_version: str | None
    expected_version: str


def check(ctx: Context) -> Health:
    """Ready when the newest migration this code ships is applied."""
    expected = latest_version()
    try:
        applied = current_version(ctx.db)
    except Exception:  # noqa: BLE001 - an unreachable or empty database is "not ready", not a 500
        logger.warning("health check: database not ready", exc_info=True)
        applied = None
    return Health(ok=applied == expected, schema_version=applied, expected_version=expected)
