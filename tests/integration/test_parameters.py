"""Deployed secrets and addresses come from Secrets Manager and SSM (moto here) through
powertools Parameters."""

from __future__ import annotations

import json

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from chalicelib import bootstrap
from chalicelib.adapters.parameters import get_db_password, get_secret_string, get_ssm_parameter
from chalicelib.errors import ConfigError


@pytest.fixture
def secretsmanager(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")


def test_a_plain_secret_is_read_as_a_string(secretsmanager):
    arn = secretsmanager.create_secret(Name="ephemera/jwt-a", SecretString="s3cr3t-value")["ARN"]

    assert get_secret_string(arn) == "s3cr3t-value"


def test_the_database_password_comes_from_an_rds_style_secret(secretsmanager):
    arn = secretsmanager.create_secret(
        Name="ephemera/db-a", SecretString=json.dumps({"username": "app", "password": "pw-1"}),
    )["ARN"]

    assert get_db_password(arn) == "pw-1"


@pytest.fixture
def app_user(mysql_server, mysql_database):
    """A MariaDB account `ephemera_app` (password "before") on the run's database, dropped after."""
    with mysql_server.connect(mysql_database) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'ephemera_app'@'%' IDENTIFIED BY 'before'")
        cur.execute(f"GRANT SELECT ON `{mysql_database}`.* TO 'ephemera_app'@'%'")
    yield "ephemera_app"
    with mysql_server.connect(mysql_database) as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'ephemera_app'@'%'")


def deploy_stage_on(monkeypatch, database_url: str, secret_arn: str) -> None:
    """The environment of a `dev` function whose database password lives in `secret_arn`."""
    monkeypatch.setenv("STAGE", "dev")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DB_SECRET_ARN", secret_arn)
    monkeypatch.setenv("JWT_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:jwt")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    bootstrap.reset()


def rds_secret(secretsmanager, name: str, username: str, password: str) -> str:
    return secretsmanager.create_secret(
        Name=name, SecretString=json.dumps({"username": username, "password": password}))["ARN"]


def current_user(connection) -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT CURRENT_USER() AS me")
        return cur.fetchone()["me"]


def test_a_deployed_stage_connects_with_the_password_from_the_secret(
    secretsmanager, monkeypatch, mysql_server, mysql_database, app_user
):
    arn = rds_secret(secretsmanager, "ephemera/db-b", app_user, "before")
    deploy_stage_on(monkeypatch, mysql_server.url(mysql_database).replace("root@", "ephemera_app@"),
                    arn)
    try:
        connection = bootstrap.get_db().engine.connect()
        assert current_user(connection).startswith("ephemera_app@")
        connection.close()
    finally:
        bootstrap.reset()


@pytest.fixture
def ssm(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    parameters.clear_caches()  # powertools caches across tests, like a warm container
    with mock_aws():
        yield boto3.client("ssm", region_name="eu-west-1")


@pytest.fixture
def deployed_stage(monkeypatch, mysql_server, mysql_database):
    """A `dev` stage's environment as `.chalice/config.json` and `make deploy` leave it: the
    WebSocket addresses are not in it, only the SSM path they were written under."""
    monkeypatch.setenv("WS_PARAMETER_PREFIX", "/ephemera/dev")
    for name in ("WS_PUBLIC_URL", "WS_MANAGEMENT_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    deploy_stage_on(monkeypatch, mysql_server.url(mysql_database),
                    "arn:aws:secretsmanager:eu-west-1:1:secret:db")
    yield
    bootstrap.reset()


def test_a_plain_ssm_parameter_is_read(ssm):
    ssm.put_parameter(Name="/ephemera/test/ws-public-url", Value="wss://a.example/api",
                      Type="String")

    assert get_ssm_parameter("/ephemera/test/ws-public-url") == "wss://a.example/api"


def test_a_missing_ssm_parameter_names_itself_and_the_command_that_writes_it(ssm):
    with pytest.raises(ConfigError, match="/ephemera/test/missing.*make deploy"):
        get_ssm_parameter("/ephemera/test/missing")


def test_a_deployed_stage_reads_its_websocket_addresses_from_ssm(ssm, deployed_stage):
    ssm.put_parameter(Name="/ephemera/dev/ws-public-url",
                      Value="wss://abc123.execute-api.eu-west-1.amazonaws.com/api", Type="String")
    ssm.put_parameter(Name="/ephemera/dev/ws-management-endpoint",
                      Value="https://abc123.execute-api.eu-west-1.amazonaws.com/api",
                      Type="String")

    assert bootstrap.ws_public_url() == "wss://abc123.execute-api.eu-west-1.amazonaws.com/api"
    assert bootstrap.ws_management_endpoint() == (
        "https://abc123.execute-api.eu-west-1.amazonaws.com/api")


def test_the_environment_wins_over_ssm_so_the_local_stack_needs_no_aws(
    ssm, deployed_stage, monkeypatch
):
    monkeypatch.setenv("WS_PUBLIC_URL", "ws://127.0.0.1:8000/ws")
    bootstrap.reset()

    assert bootstrap.ws_public_url() == "ws://127.0.0.1:8000/ws"


def test_the_push_adapter_asks_for_its_endpoint_only_on_the_first_push(ssm, deployed_stage):
    push = bootstrap.get_push()  # built by every handler; no SSM call yet

    with pytest.raises(ConfigError, match="/ephemera/dev/ws-management-endpoint"):
        push.send("L0SM9cOFvHcCIhw=", {"type": "pong"})


def test_a_rotated_database_secret_is_read_afresh_when_the_cached_password_is_refused(
    secretsmanager, monkeypatch, mysql_server, mysql_database, app_user
):
    """RDS rotates its managed secret weekly; a container holding the old password (cached for
    five minutes) must not fail every new connection until the cache expires."""
    arn = rds_secret(secretsmanager, "ephemera/db-rotating", app_user, "before")
    deploy_stage_on(monkeypatch, mysql_server.url(mysql_database).replace("root@", "ephemera_app@"),
                    arn)
    try:
        engine = bootstrap.get_db().engine
        engine.connect().close()  # caches "before"
        with mysql_server.connect(mysql_database) as conn, conn.cursor() as cur:
            cur.execute("ALTER USER 'ephemera_app'@'%' IDENTIFIED BY 'after'")
        secretsmanager.put_secret_value(
            SecretId=arn, SecretString=json.dumps({"username": app_user, "password": "after"}))

        connection = engine.connect()
        assert current_user(connection).startswith("ephemera_app@")
        connection.close()
    finally:
        bootstrap.reset()


def test_a_wrong_password_that_stays_wrong_is_still_refused(
    secretsmanager, monkeypatch, mysql_server, mysql_database
):
    import pymysql

    arn = rds_secret(secretsmanager, "ephemera/db-wrong", "root", "not-roots")
    deploy_stage_on(monkeypatch, mysql_server.url(mysql_database), arn)
    try:
        with pytest.raises(pymysql.err.OperationalError) as refused:
            bootstrap.get_db().engine.connect()
    finally:
        bootstrap.reset()

    assert refused.value.args[0] == 1045
