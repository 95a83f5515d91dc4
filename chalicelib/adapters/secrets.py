"""Secrets Manager through powertools Parameters: fetched on first use, cached per container."""

from __future__ import annotations

import json

SECRET_MAX_AGE_S = 300  # a rotated secret is picked up within five minutes


def get_secret_string(arn: str) -> str:
    """The secret's string value (cached)."""
    # Imported here: it pulls in boto3, which cold paths that need no secret should not pay.
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, max_age=SECRET_MAX_AGE_S)
    return value if isinstance(value, str) else value.decode()


def get_db_password(arn: str) -> str:
    """The `password` field of an RDS-style JSON secret (`{"username": ..., "password": ...}`)."""
    return json.loads(get_secret_string(arn))["password"]
