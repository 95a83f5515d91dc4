"""The world the database benchmarks run in: a migrated database, the system clock, and pushes
recorded instead of sent."""

from __future__ import annotations

from bench.stack import unlimited_policies
from chalicelib.clock import SystemClock
from chalicelib.config import parse_database_url
from chalicelib.services.context import Context
from chalicelib.services.limits import Limiter, NoLimits, SlidingWindowLimiter
from chalicelib.storage.database import Database
from chalicelib.storage.engines import create_engine
from chalicelib.storage.migrate import migrate
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush


def migrated_world(url: str, *, check_limits: bool = False) -> World:
    """Migrate the database at `url` and return a World on it (its database is `world.ctx.db`).
    No limiter by default; with `check_limits`, the deployed limiter checks every policy in the
    database as it does in production, each lifted out of reach so that none denies."""
    engine = create_engine(parse_database_url(url))
    migrate(engine)
    push, clock, db = RecordingPush(), SystemClock(), Database(engine)
    limiter: Limiter = NoLimits()
    if check_limits:
        limiter = SlidingWindowLimiter(db=db, clock=clock, policies=unlimited_policies())
    ctx = Context(db=db, push=push, clock=clock, limiter=limiter, keys=TEST_KEYS)
    return World(ctx, push)
