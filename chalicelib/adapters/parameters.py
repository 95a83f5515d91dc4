"""Secrets Manager and SSM Parameter Store through powertools Parameters: fetched on first use,
cached per container."""

from __future__ import annotations

import json

from chalicelib.errors import ConfigError

SECRET_MAX_AGE_S = 300  # a rotated secret is picked up within five minutes
PARAMETER_MAX_AGE_S = 300  # a redeploy that moves an endpoint is seen within five minutes


def get_secret_string(arn: str, *, fresh: bool = False) -> str:
    """The secret's string value (cached, unless `fresh`)."""
    # Imported here: it pulls in boto3, which cold paths that need no secret should not pay.
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, max_age=SECRET_MAX_AGE_S, force_fetch=fresh)
    return value if isinstance(value, str) else value.decode()


def get_db_password(arn: str, *, fresh: bool = False) -> str:
    """The `password` field of an RDS-style JSON secret (`{"username": ..., "password": ...}`)."""
    return json.loads(get_secret_string(arn, fresh=fresh))["password"]


def get_ssm_parameter(name: str) -> str:
    """A plain SSM parameter's value (cached); `ConfigError` naming it when it is missing."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_parameter(name, max_age=PARAMETER_MAX_AGE_S)
    except parameters.exceptions.GetParameterError as exc:
        raise ConfigError(f"SSM parameter {name} is missing: `make deploy` writes it") from exc
    return value if isinstance(value, str) else value.decode()
