"""The composition root: builds each collaborator once per container, on first use.

Nothing connects at import time; handlers call `get_db()` and friends, and tests build
services with fakes instead of going through here.
"""

from __future__ import annotations

import os
from functools import cache

from chalicelib.clock import Clock, SystemClock
from chalicelib.config import Config
from chalicelib.storage.database import Database
from chalicelib.storage.engines import create_engine


@cache
def get_config() -> Config:
    return Config.from_env()


@cache
def get_clock() -> Clock:
    return SystemClock()


@cache
def get_db() -> Database:
    settings = get_config().database
    password = None
    if settings.secret_arn:
        from chalicelib.adapters.secrets import get_db_password

        arn = settings.secret_arn
        password = lambda: get_db_password(arn)  # noqa: E731 - read on every (re)connect
    return Database(create_engine(settings, password=password))


def fail_fast_in_lambda() -> None:
    """In a Lambda, read the configuration during the cold start, so a missing or malformed
    variable fails the init with its name instead of the first request."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        get_config()


def reset() -> None:
    """Close and forget every cached collaborator (tests that change the environment)."""
    if get_db.cache_info().currsize:
        get_db().close()
    for accessor in (get_config, get_clock, get_db):
        accessor.cache_clear()
