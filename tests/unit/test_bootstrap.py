"""The composition root builds collaborators lazily; bad config fails a Lambda cold start."""

from __future__ import annotations

import pytest

from chalicelib import bootstrap
from chalicelib.errors import ConfigError


@pytest.fixture(autouse=True)
def fresh_bootstrap():
    bootstrap.reset()
    yield
    bootstrap.reset()


def test_a_lambda_cold_start_fails_naming_the_missing_variable(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ephemera-dev-api_handler")
    monkeypatch.setenv("STAGE", "dev")
    monkeypatch.setenv("DATABASE_URL", "mysql://ephemera@db.internal/ephemera")
    monkeypatch.setenv("DB_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:db")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("JWT_SECRET_ARN", raising=False)

    with pytest.raises(ConfigError, match="JWT_SECRET"):
        bootstrap.fail_fast_in_lambda()


def test_outside_a_lambda_nothing_is_read_at_import(monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.setenv("STAGE", "nonsense")

    bootstrap.fail_fast_in_lambda()

    assert bootstrap.get_config.cache_info().currsize == 0


def test_the_database_is_built_once_per_container(monkeypatch, tmp_path):
    monkeypatch.setenv("STAGE", "local")
    monkeypatch.setenv("JWT_SECRET", "j" * 40)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'one.db'}")

    assert bootstrap.get_db() is bootstrap.get_db()
    assert bootstrap.get_db().engine.name == "sqlite"
