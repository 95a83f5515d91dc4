"""The world the database benchmarks run in: a migrated database, the system clock, no rate
limits, and pushes recorded instead of sent."""

from __future__ import annotations

from chalicelib.clock import SystemClock
from chalicelib.config import parse_database_url
from chalicelib.services.limits import NoLimits
from chalicelib.services.realtime import Realtime
from chalicelib.storage.database import Database
from chalicelib.storage.engines import create_engine
from chalicelib.storage.migrate import migrate
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush


def migrated_world(url: str, database: type[Database] = Database) -> World:
    """Migrate the database at `url` and return a World on it (its database is `world.rt.db`,
    an instance of `database`)."""
    engine = create_engine(parse_database_url(url))
    migrate(engine)
    push = RecordingPush()
    rt = Realtime(db=database(engine), push=push, clock=SystemClock(), limiter=NoLimits(),
                  keys=TEST_KEYS)
    return World(rt, push)
