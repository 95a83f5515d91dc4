"""The composition root: builds each collaborator once per container, on first use.

Nothing connects at import time; handlers call `get_db()` and friends, and tests build
services with fakes instead of going through here.
"""

from __future__ import annotations

import os
from functools import cache

from chalicelib.adapters.push import ApiGatewayPush, Push
from chalicelib.adapters.queue import FanoutQueue, SqsFanoutQueue
from chalicelib.adapters.sms import OutboxSmsSender, SmsSender, SnsSmsSender
from chalicelib.clock import Clock, SystemClock
from chalicelib.config import WS_MANAGEMENT_ENDPOINT_PARAMETER, WS_PUBLIC_URL_PARAMETER, Config
from chalicelib.crypto import Keys
from chalicelib.errors import ConfigError
from chalicelib.services.context import TOUCH_EVERY_MS, Context
from chalicelib.services.limits import Limiter, SlidingWindowLimiter, load_policies
from chalicelib.services.tokens import Tokens
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
        from chalicelib.adapters.parameters import get_db_password

        arn = settings.secret_arn
        password = lambda fresh: get_db_password(arn, fresh=fresh)  # noqa: E731 - per connect
    return Database(create_engine(settings, password=password))


@cache
def get_keys() -> Keys:
    config = get_config()
    if config.jwt_secret is not None:
        return Keys.from_secret(config.jwt_secret)
    from chalicelib.adapters.parameters import get_secret_string

    return Keys.from_secret(get_secret_string(config.jwt_secret_arn or ""))


@cache
def get_tokens() -> Tokens:
    config = get_config()
    return Tokens(key=get_keys().jwt, issuer=config.jwt_issuer, audience=config.jwt_audience,
                  clock=get_clock())


@cache
def get_sms() -> SmsSender:
    config = get_config()
    if config.sms_mode == "console":
        return OutboxSmsSender(db=get_db(), clock=get_clock(), stage=config.stage)
    return SnsSmsSender()


@cache
def get_push() -> Push:
    return ApiGatewayPush(resolve_endpoint=ws_management_endpoint)


@cache
def get_limiter() -> Limiter:
    return SlidingWindowLimiter(db=get_db(), clock=get_clock(),
                                policies=load_policies(os.environ))


@cache
def get_context() -> Context:
    config = get_config()
    idle_ms = config.ws_idle_timeout_s * 1000
    silent_after_ms = config.presence_silent_after_s * 1000
    return Context(db=get_db(), push=get_push(), clock=get_clock(), limiter=get_limiter(),
                    keys=get_keys(), silent_after_ms=silent_after_ms,
                    presence_push_max_members=config.presence_push_max_members,
                    touch_every_ms=min(TOUCH_EVERY_MS, idle_ms // 3, silent_after_ms // 3),
                    tokens=get_tokens(), sms=get_sms(),
                    allowed_countries=config.otp_allowed_countries,
                    fanout=get_fanout_queue(), fanout_async_above=config.fanout_async_above)


@cache
def get_fanout_queue() -> FanoutQueue | None:
    url = get_config().fanout_queue_url
    return SqsFanoutQueue(url) if url else None


def ws_public_url() -> str:
    """The `wss://` address tickets send clients to."""
    url = _ws_address(get_config().ws_public_url, WS_PUBLIC_URL_PARAMETER)
    if not url:
        raise ConfigError("WS_PUBLIC_URL or WS_PARAMETER_PREFIX must be set to hand out tickets")
    return url


def ws_management_endpoint() -> str | None:
    """Where pushes go: API Gateway's management API (or the local stack's `/local`)."""
    return _ws_address(get_config().ws_management_endpoint, WS_MANAGEMENT_ENDPOINT_PARAMETER)


def _ws_address(from_environment: str | None, parameter: str) -> str | None:
    """The environment wins (the local stack sets it); a deployed stage reads the SSM parameter
    `make deploy` wrote, on first use, so a route that never pushes never pays for it."""
    prefix = get_config().ws_parameter_prefix
    if from_environment or not prefix:
        return from_environment
    from chalicelib.adapters.parameters import get_ssm_parameter

    return get_ssm_parameter(f"{prefix}/{parameter}")


def fail_fast_in_lambda() -> None:
    """In a Lambda, read the configuration during the cold start, so a missing or malformed
    variable fails the init with its name instead of the first request."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        get_config()
        load_policies(os.environ)


ACCESSORS = (get_config, get_clock, get_db, get_keys, get_tokens, get_sms, get_push,
             get_limiter, get_fanout_queue, get_context)


def reset() -> None:
    """Close and forget every cached collaborator (tests that change the environment)."""
    if get_db.cache_info().currsize:
        get_db().close()
    for accessor in ACCESSORS:
        accessor.cache_clear()
