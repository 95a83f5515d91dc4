"""Configuration is read in one place and every problem names its variable."""

from __future__ import annotations

import pytest

from chalicelib.config import Config, parse_database_url
from chalicelib.errors import ConfigError

SECRET = "s" * 32


def local(**extra: str) -> dict[str, str]:
    return {"STAGE": "local", "JWT_SECRET": SECRET, **extra}


def deployed(**extra: str) -> dict[str, str]:
    return {
        "STAGE": "prod", "JWT_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:jwt",
        "DATABASE_URL": "mysql://ephemera@db.internal:3306/ephemera",
        "DB_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:db", **extra,
    }


def test_local_stage_defaults_to_the_embedded_database_and_console_sms():
    config = Config.from_env(local())

    assert config.database.engine == "sqlite"
    assert config.database.path == ".ephemera/local.db"
    assert config.sms_mode == "console"
    assert (config.expiry_interval_s, config.ws_idle_timeout_s, config.ws_max_connection_s) == (
        60, 600, 7200)


def test_deployed_stage_reads_mysql_with_the_password_from_a_secret():
    config = Config.from_env(deployed())

    assert config.database.engine == "mysql"
    assert (config.database.host, config.database.port, config.database.name) == (
        "db.internal", 3306, "ephemera")
    assert config.database.password is None
    assert config.database.secret_arn.endswith(":db")
    assert config.sms_mode == "sns"


def test_a_database_behind_rds_proxy_is_reached_over_verified_tls():
    plain = Config.from_env(deployed()).database
    proxied = Config.from_env(deployed(
        DATABASE_URL="mysql://ephemera@proxy.internal:3306/ephemera?tls=required")).database

    assert (plain.tls, proxied.tls) == (False, True)
    assert (proxied.host, proxied.name) == ("proxy.internal", "ephemera")


def test_a_deployed_stage_names_the_ssm_path_of_its_websocket_addresses():
    config = Config.from_env(deployed(WS_PARAMETER_PREFIX="/ephemera/prod"))

    assert config.ws_parameter_prefix == "/ephemera/prod"
    assert config.ws_public_url is None and config.ws_management_endpoint is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"STAGE": "local"}, "JWT_SECRET"),
        (local(STAGE="staging"), "STAGE"),
        (local(JWT_SECRET="short"), "JWT_SECRET"),
        (local(EXPIRY_INTERVAL_S="soon"), "EXPIRY_INTERVAL_S"),
        (local(WS_IDLE_TIMEOUT_S="0"), "WS_IDLE_TIMEOUT_S"),
        (local(SMS_MODE="carrier-pigeon"), "SMS_MODE"),
        (local(DATABASE_URL="postgres://x@y/z"), "DATABASE_URL"),
        (local(DATABASE_URL="mysql://host-without-user/db"), "DATABASE_URL"),
        (local(DATABASE_URL="mysql://u@h:notaport/db"), "DATABASE_URL"),
        (local(DATABASE_URL="mysql://u@h/db?tls=maybe"), "DATABASE_URL"),
        (local(DATABASE_URL="mysql://u@h/db?charset=latin1"), "DATABASE_URL"),
        (local(OTP_ALLOWED_COUNTRIES="GB,France"), "OTP_ALLOWED_COUNTRIES"),
        (deployed(DATABASE_URL="mysql://u:hunter2@h/db"), "DATABASE_URL"),
        (deployed(DB_SECRET_ARN=""), "DB_SECRET_ARN"),
        (deployed(WS_PARAMETER_PREFIX="ephemera/prod"), "WS_PARAMETER_PREFIX"),
        (deployed(WS_PARAMETER_PREFIX="/ephemera/prod/"), "WS_PARAMETER_PREFIX"),
        (deployed(DATABASE_URL="sqlite:///x.db"), "DATABASE_URL"),
        (deployed(SMS_MODE="console"), "SMS_MODE"),
        (deployed(JWT_SECRET=SECRET), "JWT_SECRET"),
        ({k: v for k, v in deployed().items() if k != "DATABASE_URL"}, "DATABASE_URL"),
    ],
)
def test_bad_configuration_fails_naming_the_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        Config.from_env(env)


def test_a_password_in_the_url_is_a_local_convenience_only():
    settings = parse_database_url("mysql://root:p%40ss@127.0.0.1:3307/ephemera")

    assert (settings.user, settings.password, settings.port) == ("root", "p@ss", 3307)


def test_allowed_countries_are_normalised_to_upper_case_codes():
    config = Config.from_env(local(OTP_ALLOWED_COUNTRIES=" gb, us ,DE"))

    assert config.otp_allowed_countries == ("GB", "US", "DE")
