"""Configuration from the environment, read and checked in one place.

Every problem raises `ConfigError` naming the variable, so a bad deploy fails at start with a
message an operator can act on. Secrets are not resolved here: `*_ARN` variables are kept as
references and fetched lazily (see `adapters/parameters.py`), so reading the config costs no I/O.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from chalicelib.errors import ConfigError

STAGES = ("local", "dev", "prod")
SMS_MODES = ("console", "sns")
DEFAULT_SQLITE_URL = "sqlite:///.ephemera/local.db"
MIN_JWT_SECRET_BYTES = 32

# The WebSocket API's id exists only after the first `chalice deploy`, so `make deploy` writes
# its addresses to these SSM parameters under `WS_PARAMETER_PREFIX` (e.g. `/ephemera/dev`).
WS_MANAGEMENT_ENDPOINT_PARAMETER = "ws-management-endpoint"
WS_PUBLIC_URL_PARAMETER = "ws-public-url"


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the database is: `engine` is "sqlite" (with `path`) or "mysql" (host, port, ...)."""

    engine: str
    path: str = ""
    host: str = ""
    port: int = 3306
    user: str = ""
    password: str | None = None
    name: str = ""
    secret_arn: str | None = None
    tls: bool = False  # `?tls=required`: encrypt and verify the server (RDS Proxy requires it)


@dataclass(frozen=True)
class Config:
    """Everything the deployed code reads from its environment."""

    stage: str
    database: DatabaseSettings
    jwt_secret: str | None
    jwt_secret_arn: str | None
    jwt_issuer: str
    jwt_audience: str
    ws_public_url: str | None
    ws_management_endpoint: str | None
    ws_parameter_prefix: str | None
    sms_mode: str
    otp_allowed_countries: tuple[str, ...]
    expiry_interval_s: int
    ws_idle_timeout_s: int
    ws_max_connection_s: int
    # Presence after a silent drop: a connection with no sign of life this long is shown
    # offline (clients ping every 60 s), looked at every PRESENCE_SWEEP_EVERY_S at most.
    presence_silent_after_s: int = 75
    presence_sweep_every_s: int = 15
    # `presence` frames go to 1:1 partners and to groups of at most this many members; a
    # bigger group's members read presence from GET /conversations (`presence_pushed`).
    presence_push_max_members: int = 50
    # Big fan-outs (more target connections than FANOUT_ASYNC_ABOVE) go through this SQS
    # queue; without one, every push happens in the invocation that caused it.
    fanout_queue_url: str | None = None
    fanout_async_above: int = 50

    @property
    def is_local(self) -> bool:
        return self.stage == "local"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read and validate the configuration; raise `ConfigError` naming what is wrong."""
        env = os.environ if env is None else env
        stage = _choice(env, "STAGE", STAGES, default="local")
        is_local = stage == "local"
        config = cls(
            stage=stage,
            database=parse_database_url(
                _text(env, "DATABASE_URL", default=DEFAULT_SQLITE_URL if is_local else None),
                secret_arn=env.get("DB_SECRET_ARN") or None,
                allow_password=is_local,
            ),
            jwt_secret=env.get("JWT_SECRET") or None,
            jwt_secret_arn=env.get("JWT_SECRET_ARN") or None,
            jwt_issuer=_text(env, "JWT_ISSUER", default="ephemera"),
            jwt_audience=_text(env, "JWT_AUDIENCE", default="ephemera-api"),
            ws_public_url=env.get("WS_PUBLIC_URL") or None,
            ws_management_endpoint=env.get("WS_MANAGEMENT_ENDPOINT") or None,
            ws_parameter_prefix=_parameter_prefix(env, "WS_PARAMETER_PREFIX"),
            sms_mode=_choice(env, "SMS_MODE", SMS_MODES, default="console" if is_local else "sns"),
            otp_allowed_countries=_country_list(env, "OTP_ALLOWED_COUNTRIES"),
            expiry_interval_s=_positive_int(env, "EXPIRY_INTERVAL_S", default=60),
            ws_idle_timeout_s=_positive_int(env, "WS_IDLE_TIMEOUT_S", default=600),
            ws_max_connection_s=_positive_int(env, "WS_MAX_CONNECTION_S", default=7200),
            presence_silent_after_s=_positive_int(env, "PRESENCE_SILENT_AFTER_S", default=75),
            presence_sweep_every_s=_positive_int(env, "PRESENCE_SWEEP_EVERY_S", default=15),
            presence_push_max_members=_positive_int(env, "PRESENCE_PUSH_MAX_MEMBERS",
                                                    default=50),
            fanout_queue_url=_queue_url(env, "FANOUT_QUEUE_URL"),
            fanout_async_above=_positive_int(env, "FANOUT_ASYNC_ABOVE", default=50),
        )
        config._check_secrets()
        return config

    def _check_secrets(self) -> None:
        if self.jwt_secret is None and self.jwt_secret_arn is None:
            raise ConfigError("JWT_SECRET (stage local) or JWT_SECRET_ARN must be set")
        if self.jwt_secret is not None:
            if not self.is_local:
                raise ConfigError("JWT_SECRET is for stage local only; use JWT_SECRET_ARN")
            if len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
                raise ConfigError(f"JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes")
        if self.sms_mode == "console" and not self.is_local:
            raise ConfigError("SMS_MODE=console is for stage local only")
        if self.database.engine == "sqlite" and not self.is_local:
            raise ConfigError("DATABASE_URL: sqlite is for stage local only")
        if self.database.engine == "mysql" and not self.is_local and not self.database.secret_arn:
            raise ConfigError("DB_SECRET_ARN must be set outside stage local")


def parse_database_url(
    url: str, *, secret_arn: str | None = None, allow_password: bool = True
) -> DatabaseSettings:
    """Parse `sqlite:///path` or `mysql://user@host:port/db[?tls=required]` into settings."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if not path:
            raise ConfigError("DATABASE_URL: sqlite URLs look like sqlite:///path/to/file.db")
        return DatabaseSettings(engine="sqlite", path=path)
    if parts.scheme != "mysql":
        raise ConfigError("DATABASE_URL must start with sqlite:/// or mysql://")
    name = parts.path.lstrip("/")
    if not parts.hostname or not name or not parts.username:
        raise ConfigError("DATABASE_URL: mysql URLs look like mysql://user@host:port/database")
    if parts.password is not None and not allow_password:
        raise ConfigError(
            "DATABASE_URL must not carry a password outside stage local; use DB_SECRET_ARN"
        )
    try:
        port = parts.port or 3306
    except ValueError as exc:
        raise ConfigError("DATABASE_URL: the port is not a number") from exc
    options = parse_qs(parts.query, keep_blank_values=True)
    if set(options) - {"tls"} or options.get("tls", ["required"]) != ["required"]:
        raise ConfigError("DATABASE_URL: the only option is ?tls=required")
    return DatabaseSettings(
        engine="mysql",
        host=parts.hostname,
        port=port,
        user=unquote(parts.username),
        password=unquote(parts.password) if parts.password is not None else None,
        name=name,
        secret_arn=secret_arn,
        tls="tls" in options,
    )


def _text(env: Mapping[str, str], name: str, *, default: str | None) -> str:
    value = env.get(name) or default
    if value is None:
        raise ConfigError(f"{name} must be set")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], *, default: str) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value


def _positive_int(env: Mapping[str, str], name: str, *, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number (got {raw!r})") from exc
    if value <= 0:
        raise ConfigError(f"{name} must be positive (got {value})")
    return value


def _parameter_prefix(env: Mapping[str, str], name: str) -> str | None:
    """An SSM path such as `/ephemera/dev`: absolute, without a trailing slash."""
    value = env.get(name) or None
    if value is not None and (not value.startswith("/") or value.endswith("/")):
        raise ConfigError(f"{name} must look like /ephemera/dev (got {value!r})")
    return value


def _country_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """ISO 3166 alpha-2 codes, comma separated; empty means every country."""
    codes = tuple(code.strip().upper() for code in env.get(name, "").split(",") if code.strip())
    for code in codes:
        if len(code) != 2 or not code.isalpha():
            raise ConfigError(f"{name} must list two-letter country codes (got {code!r})")
    return codes


def _queue_url(env: Mapping[str, str], name: str) -> str | None:
    """An SQS queue URL: `https://sqs.{region}.amazonaws.com/{account}/{name}` (or the local
    stack's `http://HOST:PORT/local/sqs/{account}/{name}`)."""
    value = env.get(name) or None
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc \
            or len(parts.path.strip("/").split("/")) < 2:
        raise ConfigError(f"{name} must be a queue URL such as "
                          f"https://sqs.us-east-1.amazonaws.com/123456789012/ephemera-dev-fanout "
                          f"(got {value!r})")
    return value
