"""`chalice deploy` → redeploy → `chalice delete` of the app, per stage, against a local moto server
(tests/deploy/moto_server.py), read back with boto3 after each step.

Each stage runs its whole life cycle once (the `lifecycle` fixture) in a copy of the project shared
by both stages (Chalice's package cache is reused); the tests then judge what was read back.
Where config.json has no VPC settings for a stage, fake subnet and security group ids are written
into the copy (moto's Lambda does not check them against EC2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import moto
import pytest

from tests.deploy import aws_stack, moto_server
from tests.deploy.aws_stack import aws_env, chalice, function_config, function_name

STAGES = ["dev", "prod"]
# Chalice's name of each function → the handler Lambda must call.
HANDLERS = {
    "api_handler": "app.app",
    "websocket_connect": "app.ws_connect",
    "websocket_message": "app.ws_message",
    "websocket_disconnect": "app.ws_disconnect",
    "scheduled_cleanup": "app.scheduled_cleanup",
    "presence_watch": "app.presence_watch",
    "migrate": "app.migrate_database",
    "fanout_worker": "app.fanout_worker",
}
WEBSOCKET_ROUTES = {
    "$connect": "websocket_connect",
    "$default": "websocket_message",
    "$disconnect": "websocket_disconnect",
}
FAKE_VPC = {"subnet_ids": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
            "security_group_ids": ["sg-0a1b2c3d4e5f60001"]}


@dataclass
class Snapshot:
    """What moto holds for one stage after one chalice command."""

    deployed: dict[str, dict[str, Any]]
    function_names: set[str]
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles_exist: dict[str, bool] = field(default_factory=dict)
    rule: dict[str, Any] | None = None
    rest_api_ids: list[str] = field(default_factory=list)
    websocket_api_ids: list[str] = field(default_factory=list)
    rest_integrations: dict[tuple[str, str], dict] = field(default_factory=dict)
    websocket_routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    fanout_mappings: list[dict[str, Any]] = field(default_factory=list)


def read_back(endpoint: str, project: Path, stage: str, deployed_before: dict) -> Snapshot:
    deployed = aws_stack.deployed(project, stage) or deployed_before
    snap = Snapshot(
        deployed=aws_stack.deployed(project, stage),
        function_names=aws_stack.function_names(endpoint, stage),
        rest_api_ids=[api["id"] for api in
                      aws_stack.client(endpoint, "apigateway").get_rest_apis()["items"]],
        websocket_api_ids=[api["ApiId"] for api in
                           aws_stack.client(endpoint, "apigatewayv2").get_apis()["Items"]],
    )
    for name, resource in deployed.items():
        if resource["resource_type"] == "lambda_function" and name in _names(snap):
            snap.functions[name] = aws_stack.function(endpoint, resource["lambda_arn"])
    for resource in deployed.values():
        if resource["resource_type"] == "iam_role":
            snap.roles_exist[resource["role_name"]] = aws_stack.role_exists(
                endpoint, resource["role_arn"])
    snap.rule = aws_stack.schedule_rule(endpoint, deployed["scheduled_cleanup-event"]["rule_name"])
    rest_api_id = deployed["rest_api"]["rest_api_id"]
    if rest_api_id in snap.rest_api_ids:
        snap.rest_integrations = aws_stack.rest_api_integrations(endpoint, rest_api_id)
    websocket_api_id = deployed["websocket_api"]["websocket_api_id"]
    if websocket_api_id in snap.websocket_api_ids:
        snap.websocket_routes = aws_stack.websocket_routes(endpoint, websocket_api_id)
    snap.fanout_mappings = aws_stack.queue_mappings(endpoint, function_name(stage, "fanout_worker"))
    return snap


def _names(snap: Snapshot) -> set[str]:
    """Chalice names (`api_handler`, ...) of the functions that exist."""
    return {name for name, resource in snap.deployed.items()
            if resource["resource_type"] == "lambda_function"
            and resource["lambda_arn"].rsplit(":", 1)[-1] in snap.function_names}


@dataclass
class Lifecycle:
    stage: str
    project: Path
    deployed: Snapshot
    redeployed: Snapshot
    deleted: Snapshot
    invoke_status: int
    queue_arn: str


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return aws_stack.project_copy(tmp_path_factory.mktemp("chalice"))


@pytest.fixture(scope="module", params=STAGES)
def lifecycle(request: pytest.FixtureRequest, project: Path, moto_endpoint: str) -> Lifecycle:
    stage = request.param
    if not aws_stack.stage_config(project, stage).get("subnet_ids"):
        aws_stack.set_stage_config(project, stage, **FAKE_VPC)
    env = aws_env(moto_endpoint, stage)
    queue_arn = aws_stack.create_fanout_queue(moto_endpoint, stage)  # `make infra` makes it

    chalice(project, "deploy", "--stage", stage, env=env)
    deployed = read_back(moto_endpoint, project, stage, {})
    invoked = aws_stack.client(moto_endpoint, "lambda").invoke(
        FunctionName=function_name(stage, "scheduled_cleanup"), Payload=b"{}")

    chalice(project, "deploy", "--stage", stage, env=env)
    redeployed = read_back(moto_endpoint, project, stage, {})

    chalice(project, "delete", "--stage", stage, env=env)
    deleted = read_back(moto_endpoint, project, stage, redeployed.deployed)
    aws_stack.delete_fanout_queue(moto_endpoint, stage)  # the server is shared with other tests
    return Lifecycle(stage, project, deployed, redeployed, deleted, invoked["StatusCode"],
                     queue_arn)


def arn_of(snap: Snapshot, name: str) -> str:
    return snap.deployed[name]["lambda_arn"]


def test_deploy_creates_every_function_with_its_handler_memory_and_timeout_from_config(
    lifecycle: Lifecycle,
) -> None:
    snap, stage = lifecycle.deployed, lifecycle.stage
    recorded = {name for name, resource in snap.deployed.items()
                if resource["resource_type"] == "lambda_function"}
    assert set(HANDLERS) <= recorded
    assert set(snap.functions) == recorded, "every function chalice recorded exists"
    for name in HANDLERS:
        assert snap.functions[name]["FunctionName"] == function_name(stage, name)
        assert snap.functions[name]["Handler"] == HANDLERS[name]
    for name, found in snap.functions.items():
        config = function_config(lifecycle.project, stage, name)
        assert found["MemorySize"] == config.get("lambda_memory_size",
                                                 aws_stack.DEFAULT_MEMORY_MB), name
        assert found["Timeout"] == config.get("lambda_timeout", aws_stack.DEFAULT_TIMEOUT_S), name
        assert found["Environment"]["STAGE"] == stage, name
        assert found["Environment"]["POWERTOOLS_METRICS_NAMESPACE"] == f"Ephemera/{stage}", name
        role_name = found["Role"].rsplit("/", 1)[-1]
        assert snap.roles_exist.get(role_name) is True, (name, found["Role"])


def test_deployed_functions_run_in_the_stage_subnets_and_security_groups(
    lifecycle: Lifecycle,
) -> None:
    for name, found in lifecycle.deployed.functions.items():
        config = function_config(lifecycle.project, lifecycle.stage, name)
        assert sorted(found["VpcConfig"]["SubnetIds"]) == sorted(config["subnet_ids"]), name
        assert (sorted(found["VpcConfig"]["SecurityGroupIds"])
                == sorted(config["security_group_ids"])), name


def test_scheduled_cleanup_runs_every_minute_one_invocation_at_a_time(
    lifecycle: Lifecycle,
) -> None:
    snap = lifecycle.deployed
    assert snap.functions["scheduled_cleanup"]["ReservedConcurrentExecutions"] == 1
    assert snap.rule is not None
    assert snap.rule["ScheduleExpression"] == "rate(1 minute)"
    assert snap.rule["State"] == "ENABLED"
    assert [t["Arn"] for t in snap.rule["Targets"]] == [arn_of(snap, "scheduled_cleanup")]
    assert lifecycle.invoke_status == 200, "moto's Lambda answers an invoke without Docker"


def test_the_fanout_worker_takes_the_stages_queue_one_message_at_a_time(
    lifecycle: Lifecycle,
) -> None:
    (mapping,) = lifecycle.deployed.fanout_mappings
    assert mapping["EventSourceArn"] == lifecycle.queue_arn
    assert mapping["EventSourceArn"].endswith(f":ephemera-{lifecycle.stage}-fanout")
    assert mapping["FunctionArn"] == arn_of(lifecycle.deployed, "fanout_worker")
    assert mapping["BatchSize"] == 1
    (again,) = lifecycle.redeployed.fanout_mappings
    assert again["UUID"] == mapping["UUID"]
    assert lifecycle.deleted.fanout_mappings == []


def test_rest_api_sends_every_route_to_api_handler_as_a_lambda_proxy(
    lifecycle: Lifecycle,
) -> None:
    snap = lifecycle.deployed
    integrations = snap.rest_integrations
    assert ("/health", "GET") in integrations
    assert ("/conversations/{conversation_id}/messages", "GET") in integrations
    api_handler = arn_of(snap, "api_handler")
    preflights = {path for (path, method) in integrations if method == "OPTIONS"}
    assert preflights == {path for (path, _) in integrations}  # CORS: every path answers them
    for (path, method), integration in integrations.items():
        # Chalice's Swagger says `aws_proxy`/`mock`; AWS answers `AWS_PROXY`/`MOCK`, moto 5.2.5
        # echoes the document's spelling.
        if method == "OPTIONS":
            assert integration["type"].upper() == "MOCK", path
            continue
        assert integration["type"].upper() == "AWS_PROXY", (path, method)
        assert integration["httpMethod"] == "POST", (path, method)
        assert f"/functions/{api_handler}/invocations" in integration["uri"], (path, method)


def test_websocket_api_has_exactly_connect_default_and_disconnect_each_on_its_function(
    lifecycle: Lifecycle,
) -> None:
    snap = lifecycle.deployed
    assert set(snap.websocket_routes) == set(WEBSOCKET_ROUTES)
    for route_key, name in WEBSOCKET_ROUTES.items():
        integration = snap.websocket_routes[route_key]["Integration"]
        assert integration["IntegrationType"] == "AWS_PROXY", route_key
        assert arn_of(snap, name) in integration["IntegrationUri"], route_key


def test_redeploy_updates_in_place_without_duplicating_functions_or_apis(
    lifecycle: Lifecycle,
) -> None:
    first, second = lifecycle.deployed, lifecycle.redeployed
    assert second.function_names == first.function_names
    assert second.deployed["rest_api"]["rest_api_id"] == first.deployed["rest_api"]["rest_api_id"]
    assert (second.deployed["websocket_api"]["websocket_api_id"]
            == first.deployed["websocket_api"]["websocket_api_id"])
    assert sorted(second.rest_api_ids) == sorted(first.rest_api_ids)
    assert sorted(second.websocket_api_ids) == sorted(first.websocket_api_ids)
    assert set(second.websocket_routes) == set(WEBSOCKET_ROUTES)
    assert set(second.rest_integrations) == set(first.rest_integrations)
    assert [t["Arn"] for t in second.rule["Targets"]] == [arn_of(first, "scheduled_cleanup")]
    for name, found in second.functions.items():
        assert found["FunctionArn"] == first.functions[name]["FunctionArn"], name


def test_delete_removes_the_functions_the_apis_and_the_schedule(lifecycle: Lifecycle) -> None:
    before, after = lifecycle.redeployed, lifecycle.deleted
    assert after.function_names == set()
    assert before.deployed["rest_api"]["rest_api_id"] not in after.rest_api_ids
    assert before.deployed["websocket_api"]["websocket_api_id"] not in after.websocket_api_ids
    assert after.rule is None
    assert not any(after.roles_exist.values())


# --- the moto shim itself (tests/deploy/moto_server.py) -----------------------------------------

SWAGGER_2_WITHOUT_DESCRIPTION = {
    "swagger": "2.0",
    "info": {"title": "shim-check", "version": "1.0"},
    "schemes": ["https"],
    "paths": {"/ping": {"get": {
        "responses": {"200": {"description": "pong"}},
        "x-amazon-apigateway-integration": {
            "type": "aws_proxy", "httpMethod": "POST", "passthroughBehavior": "when_no_match",
            "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
                   "arn:aws:lambda:us-east-1:123456789012:function:f/invocations",
        },
    }}},
}


def test_shim_imports_a_swagger_2_document_without_a_description(moto_endpoint: str) -> None:
    api = aws_stack.client(moto_endpoint, "apigateway")
    created = api.import_rest_api(body=json.dumps(SWAGGER_2_WITHOUT_DESCRIPTION),
                                  failOnWarnings=True)
    try:
        assert created["name"] == "shim-check"
        assert not created.get("description")
        paths = {r["path"] for r in api.get_resources(restApiId=created["id"])["items"]}
        assert paths == {"/", "/ping"}
        api.put_rest_api(restApiId=created["id"], mode="overwrite",
                         body=json.dumps(SWAGGER_2_WITHOUT_DESCRIPTION))
        with pytest.raises(api.exceptions.BadRequestException):
            api.put_rest_api(restApiId=created["id"], mode="overwrite",
                             body=json.dumps({**SWAGGER_2_WITHOUT_DESCRIPTION, "swagger": "1.2"}))
    finally:
        api.delete_rest_api(restApiId=created["id"])


def test_shim_gives_websocket_apis_deployments_and_stages_their_deployment(
    moto_endpoint: str,
) -> None:
    v2 = aws_stack.client(moto_endpoint, "apigatewayv2")
    api_id = v2.create_api(Name="shim-check", ProtocolType="WEBSOCKET",
                           RouteSelectionExpression="$request.body.action")["ApiId"]
    try:
        first = v2.create_deployment(ApiId=api_id)
        assert first["DeploymentStatus"] == "DEPLOYED"
        v2.create_stage(ApiId=api_id, StageName="api", DeploymentId=first["DeploymentId"])
        assert v2.get_stage(ApiId=api_id, StageName="api")["DeploymentId"] == first["DeploymentId"]
        second = v2.create_deployment(ApiId=api_id, StageName="api", Description="again")
        assert v2.get_stage(ApiId=api_id, StageName="api")["DeploymentId"] == second["DeploymentId"]
        assert v2.get_deployment(ApiId=api_id, DeploymentId=second["DeploymentId"])[
            "Description"] == "again"
        listed = v2.get_deployments(ApiId=api_id)["Items"]
        assert {d["DeploymentId"] for d in listed} == {first["DeploymentId"],
                                                       second["DeploymentId"]}
        v2.delete_deployment(ApiId=api_id, DeploymentId=first["DeploymentId"])
        with pytest.raises(v2.exceptions.NotFoundException):
            v2.get_deployment(ApiId=api_id, DeploymentId=first["DeploymentId"])
        with pytest.raises(v2.exceptions.NotFoundException):
            v2.create_deployment(ApiId=api_id, StageName="no-such-stage")
    finally:
        v2.delete_api(ApiId=api_id)


def test_shim_refuses_to_patch_any_moto_but_the_one_it_was_written_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    with pytest.raises(AssertionError, match="moto 5.2.5 and moto 5.2.6 is installed"):
        moto_server.patch_moto()
