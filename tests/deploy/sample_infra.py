"""An infra stack's outputs as `infra/stack.yaml` would give them, for tests without AWS."""

from __future__ import annotations

from infra.deploy import InfraOutputs

ACCOUNT, REGION = "111122223333", "us-east-1"

SAMPLE_INFRA = InfraOutputs(
    subnet_ids=("subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"),
    security_group_id="sg-0cccccccccccccccc",
    database_proxy_endpoint="ephemera-dev.proxy-abcdefghijkl.us-east-1.rds.amazonaws.com",
    database_name="ephemera", database_user="ephemera",
    database_secret_arn=f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-1-AbCdEf",
    jwt_secret_arn=f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ephemera/dev/jwt-GhIjKl",
    fanout_queue_url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/ephemera-dev-fanout",
    fanout_queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:ephemera-dev-fanout",
)
