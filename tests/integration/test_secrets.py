"""Deployed secrets come from Secrets Manager (moto here) through powertools Parameters."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from chalicelib import bootstrap
from chalicelib.adapters.secrets import get_db_password, get_secret_string


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


def test_a_deployed_stage_connects_with_the_password_from_the_secret(
    secretsmanager, monkeypatch, mysql_server, mysql_database
):
    with mysql_server.connect(mysql_database) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'ephemera_app'@'%' IDENTIFIED BY 'pw-from-secret'")
        cur.execute(f"GRANT SELECT ON `{mysql_database}`.* TO 'ephemera_app'@'%'")
    arn = secretsmanager.create_secret(
        Name="ephemera/db-b",
        SecretString=json.dumps({"username": "ephemera_app", "password": "pw-from-secret"}),
    )["ARN"]
    monkeypatch.setenv("STAGE", "dev")
    monkeypatch.setenv("DATABASE_URL",
                       mysql_server.url(mysql_database).replace("root@", "ephemera_app@"))
    monkeypatch.setenv("DB_SECRET_ARN", arn)
    monkeypatch.setenv("JWT_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:jwt")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    bootstrap.reset()

    def whoami(txn):
        txn.execute("SELECT CURRENT_USER() AS me")
        return txn.fetchone()["me"]

    try:
        assert bootstrap.get_db().run_read("t", whoami).startswith("ephemera_app@")
    finally:
        bootstrap.reset()
        with mysql_server.connect(mysql_database) as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS 'ephemera_app'@'%'")
