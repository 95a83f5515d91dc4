"""The stage's IAM policy grants exactly what `chalicelib/` calls: every AWS call found in the
code (an AST walk) is allowed, and nothing else is, beyond what Lambda itself needs (its logs,
its network interfaces, and the fan-out queue's event source)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import botocore.session
import pytest

from infra.deploy import lambda_policy
from tests.deploy.sample_infra import ACCOUNT, REGION, SAMPLE_INFRA

CHALICELIB = Path(__file__).parents[2] / "chalicelib"
WS_API = "a1b2c3d4e5"
INFRA = SAMPLE_INFRA
# Calls made through powertools Parameters, by the function that makes them.
POWERTOOLS_CALLS = {"get_secret": "secretsmanager:GetSecretValue",
                    "get_parameter": "ssm:GetParameter"}
# Every operation of the management API is authorised by this one action.
ACTION_OF_SERVICE = {"apigatewaymanagementapi": "execute-api:ManageConnections"}
# Batch operations have no IAM action of their own: the single one authorises them (SQS
# Developer Guide, "Amazon SQS API permissions: Actions and resource reference").
ACTION_OF_OPERATION = {"sqs:SendMessageBatch": "sqs:SendMessage",
                       "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
                       "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility"}
# What Lambda needs to run at all: its logs, and network interfaces in the VPC.
RUNTIME_ACTIONS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                   "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                   "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
                   "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}
# What Lambda's SQS event source mapping does with the worker's role (no code of ours calls
# them), and the visibility change that lets a consumer hand a message back early.
EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                        "sqs:ChangeMessageVisibility"}


@cache
def operations_of(service: str) -> dict[str, str]:
    """boto3 method name -> IAM action, from botocore's own service model."""
    client = botocore.session.get_session().create_client(
        service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x",
        endpoint_url="https://example.invalid")
    prefix = client.meta.service_model.signing_name
    actions = {method: ACTION_OF_SERVICE.get(service, f"{prefix}:{operation}")
               for method, operation in client.meta.method_to_api_mapping.items()}
    return {method: ACTION_OF_OPERATION.get(action, action) for method, action in actions.items()}


def declared_actions_in(tree: ast.Module) -> set[str]:
    """IAM actions a module declares as a top-level `..._ACTION = "service:Action"` constant:
    code that signs its own requests (the push adapter) makes no boto3 call to find."""
    return {
        node.value.value for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and any(isinstance(t, ast.Name) and t.id.endswith("_ACTION") for t in node.targets)
    }


def aws_calls_in(source: str) -> set[str]:
    """The IAM actions a module's code needs: boto3 clients it makes (`boto3.client("x")` or a
    session's `.client("x")`) and the methods it calls on them, powertools Parameters getters,
    and the actions it declares."""
    tree = ast.parse(source)
    services = {
        node.args[0].value for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr == "client" and node.args
        and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
    }
    actions = declared_actions_in(tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        method, owner = node.func.attr, node.func.value
        if isinstance(owner, ast.Name) and owner.id == "parameters" and method in POWERTOOLS_CALLS:
            actions.add(POWERTOOLS_CALLS[method])
        for service in services:
            if method in operations_of(service):
                actions.add(operations_of(service)[method])
    return actions


@cache
def actions_called_by_chalicelib() -> frozenset[str]:
    actions: set[str] = set()
    for path in CHALICELIB.rglob("*.py"):
        actions |= aws_calls_in(path.read_text())
    return frozenset(actions)


def policy(stage: str = "dev") -> dict:
    return lambda_policy(stage, account=ACCOUNT, region=REGION, infra=INFRA,
                         websocket_api_id=WS_API)


def statements_allowing(action: str, stage: str = "dev") -> list[dict]:
    found = []
    for statement in policy(stage)["Statement"]:
        granted = statement["Action"]
        if action in ([granted] if isinstance(granted, str) else granted):
            found.append(statement)
    return found


def resources(statement: dict) -> list[str]:
    resource = statement["Resource"]
    return [resource] if isinstance(resource, str) else resource


def test_the_walk_finds_the_calls_the_code_makes_today():
    assert actions_called_by_chalicelib() == {
        "execute-api:ManageConnections", "sns:Publish", "secretsmanager:GetSecretValue",
        "ssm:GetParameter", "sqs:SendMessage"}


def test_a_client_made_from_a_session_is_found_and_a_batch_send_needs_send_message():
    source = ("import boto3\nsqs = boto3.session.Session().client('sqs', endpoint_url='x')\n"
              "sqs.send_message_batch(QueueUrl='q', Entries=[])\n")

    assert aws_calls_in(source) == {"sqs:SendMessage"}


def test_a_new_aws_call_in_the_code_is_found_and_is_not_in_the_policy():
    """The check can fail: code that starts calling S3 needs a policy change first."""
    source = "import boto3\nclient = boto3.client('s3')\nclient.put_object(Bucket='b', Key='k')\n"

    assert aws_calls_in(source) == {"s3:PutObject"}
    assert statements_allowing("s3:PutObject") == []


def test_an_action_declared_by_code_that_signs_its_own_requests_is_found():
    """The push adapter signs with SigV4 itself; the action it declares is what it needs, and
    a new declared action fails the check until the policy grants it."""
    source = 'PUT_ACTION = "s3:PutObject"\nSIGNING_SERVICE = "s3"\n'

    assert aws_calls_in(source) == {"s3:PutObject"}
    assert statements_allowing("s3:PutObject") == []


def test_the_push_adapter_declares_the_management_api_action():
    from chalicelib.adapters import push

    assert aws_calls_in(Path(push.__file__).read_text()) == {"execute-api:ManageConnections"}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_call_the_code_makes_is_allowed(stage):
    for action in actions_called_by_chalicelib():
        assert statements_allowing(action, stage), f"{action} is called but not allowed"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_policy_allows_nothing_the_code_does_not_call(stage):
    granted = set()
    for statement in lambda_policy(stage, account=ACCOUNT, region=REGION, infra=INFRA,
                                   websocket_api_id=WS_API)["Statement"]:
        assert statement["Effect"] == "Allow"
        action = statement["Action"]
        granted |= {action} if isinstance(action, str) else set(action)

    assert granted - RUNTIME_ACTIONS - EVENT_SOURCE_ACTIONS == set(actions_called_by_chalicelib())


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_fanout_worker_may_consume_the_queue_as_lambdas_event_source_does(stage):
    granted = {action for action in EVENT_SOURCE_ACTIONS if statements_allowing(action, stage)}

    assert granted == EVENT_SOURCE_ACTIONS


def test_every_queue_grant_names_the_fanout_queue_and_nothing_else():
    sqs = [s for s in policy()["Statement"]
           if any(a.startswith("sqs:") for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                 else s["Action"]))]

    assert sqs, "the policy grants nothing on the queue"
    for statement in sqs:
        assert resources(statement) == [INFRA.fanout_queue_arn], statement["Sid"]
    granted = {a for s in sqs for a in ([s["Action"]] if isinstance(s["Action"], str)
                                         else s["Action"])}
    assert granted == {"sqs:SendMessage"} | EVENT_SOURCE_ACTIONS


def test_pushes_are_allowed_only_to_this_apis_connections_on_stage_api():
    (statement,) = statements_allowing("execute-api:ManageConnections")

    assert resources(statement) == [
        f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{WS_API}/api/*/@connections/*"]


def test_secrets_are_exactly_the_database_and_jwt_ones():
    (statement,) = statements_allowing("secretsmanager:GetSecretValue")

    assert sorted(resources(statement)) == sorted(
        [INFRA.database_secret_arn, INFRA.jwt_secret_arn])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_ssm_reads_are_exactly_the_stages_two_websocket_addresses(stage):
    (statement,) = statements_allowing("ssm:GetParameter", stage)

    assert resources(statement) == [
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ephemera/{stage}/ws-management-endpoint",
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ephemera/{stage}/ws-public-url"]


def test_only_actions_that_take_no_arn_are_granted_on_every_resource():
    wildcard = set()
    for statement in policy()["Statement"]:
        if "*" in resources(statement):
            action = statement["Action"]
            wildcard |= {action} if isinstance(action, str) else set(action)

    # An SMS goes to a phone number (no ARN); Lambda's network-interface actions take none.
    assert wildcard == {"sns:Publish"} | {a for a in RUNTIME_ACTIONS if a.startswith("ec2:")}


def test_before_the_first_deploy_the_push_grant_is_still_limited_to_the_account_and_stage():
    first = lambda_policy("dev", account=ACCOUNT, region=REGION, infra=INFRA,
                          websocket_api_id=None)
    (statement,) = [s for s in first["Statement"]
                    if s["Action"] == "execute-api:ManageConnections"]

    assert statement["Resource"] == (
        f"arn:aws:execute-api:{REGION}:{ACCOUNT}:*/api/*/@connections/*")
