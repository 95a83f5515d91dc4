"""`make deploy` and `make destroy` (infra/deploy.py) against the moto server: stack outputs in,
`chalice deploy` (twice on the first run, to narrow the policy to the new WebSocket API), the
SSM addresses, the migrate invocation, the fan-out queue wired to its worker, the alarms stack,
the web client's upload, and the teardown.

moto's CloudFormation cannot create RDS Proxy, so the infra stack here is a stand-in that makes
the VPC pieces moto knows and hands the rest of `infra/stack.yaml`'s outputs through as values;
its fan-out queue and dead-letter queue are `infra/stack.yaml`'s own resources, copied in.
`infra/stack.yaml` itself is linted in test_infra_templates.py. moto's CloudFormation skips
alarms and email subscriptions (no support, a warning): `infra/operate.yaml`'s are checked in
test_operate_template.py; here its stack, topic and dashboard are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from cfnlint.decode.cfn_yaml import load, loads

from infra.deploy import (
    CONFIG_SCRIPT,
    INFRA_TEMPLATE,
    DeployedApis,
    Deployment,
    InfraOutputs,
    deploy_stack,
    deployed_apis,
    deployed_resources,
    infra_stack_name,
    lambda_policy,
    operate_stack_name,
    publish_web_client,
    web_client_config,
)
from tests.deploy.aws_stack import (
    CHALICE,
    REGION,
    aws_env,
    function,
    function_names,
    log_retention_days,
    project_copy,
    queue_mappings,
)

STAND_IN_VPC = """
Parameters:
  Stage: {Type: String}
  DatabaseSecretArn: {Type: String}
  JwtSecretArn: {Type: String}
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.40.0.0/16}}
  PrivateA: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.40.1.0/24}}
  PrivateB: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.40.2.0/24}}
  LambdaSecurityGroup:
    Type: AWS::EC2::SecurityGroup
    Properties: {GroupDescription: lambdas, VpcId: !Ref Vpc}
Outputs:
  SubnetIds: {Value: !Join [",", [!Ref PrivateA, !Ref PrivateB]]}
  LambdaSecurityGroupId: {Value: !GetAtt LambdaSecurityGroup.GroupId}
  DatabaseProxyEndpoint: {Value: ephemera.proxy-abcdefghijkl.us-east-1.rds.amazonaws.com}
  DatabaseName: {Value: ephemera}
  DatabaseUser: {Value: ephemera}
  DatabaseSecretArn: {Value: !Ref DatabaseSecretArn}
  JwtSecretArn: {Value: !Ref JwtSecretArn}
"""
FANOUT_QUEUES = ("FanoutQueue", "FanoutDeadLetterQueue")


def stand_in_infra() -> str:
    """The stand-in stack with `infra/stack.yaml`'s own queues, their parameter and outputs."""
    template = loads(STAND_IN_VPC)
    real = load(str(INFRA_TEMPLATE))
    for name in FANOUT_QUEUES:
        template["Resources"][name] = real["Resources"][name]
    template["Parameters"]["FanoutDeadLetterRetentionSeconds"] = real["Parameters"][
        "FanoutDeadLetterRetentionSeconds"]
    for name in ("FanoutQueueUrl", "FanoutQueueArn"):
        template["Outputs"][name] = real["Outputs"][name]
    return json.dumps(template)


STAND_IN_INFRA = stand_in_infra()


@dataclass
class DeployRun:
    endpoint: str  # moto's
    stage: str
    project: Path
    infra: InfraOutputs
    urls: dict[str, str]
    said: list[str]
    again_said: list[str]
    again_urls: dict[str, str]
    deployment: Deployment
    log_retention: dict[str, int | None]  # log group → days, read right after the deploys


@pytest.fixture(scope="module")
def on_moto(moto_endpoint: str) -> Iterator[str]:
    """This process, and the `chalice` it runs, talk to moto only."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in aws_env(moto_endpoint).items():
            patch.setenv(name, value)
        yield moto_endpoint


def create_stand_in_infra(stage: str) -> InfraOutputs:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arns = {name: secrets.create_secret(Name=f"ephemera/{stage}/{name}",
                                        SecretString="x" * 64)["ARN"]
            for name in ("db", "jwt")}
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(
        StackName=infra_stack_name(stage), TemplateBody=STAND_IN_INFRA,
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage},
                    {"ParameterKey": "DatabaseSecretArn", "ParameterValue": arns["db"]},
                    {"ParameterKey": "JwtSecretArn", "ParameterValue": arns["jwt"]}])
    (stack,) = cloudformation.describe_stacks(StackName=infra_stack_name(stage))["Stacks"]
    return InfraOutputs.from_outputs({o["OutputKey"]: o["OutputValue"]
                                      for o in stack["Outputs"]})


@pytest.fixture(scope="module", params=["dev", "prod"])
def deployed(request, on_moto, tmp_path_factory) -> DeployRun:
    stage = request.param
    project = project_copy(tmp_path_factory.mktemp(f"make-deploy-{stage}"))
    infra = create_stand_in_infra(stage)
    said: list[str] = []
    deployment = Deployment(stage, session=boto3.session.Session(region_name=REGION),
                            project_dir=project, chalice=(str(CHALICE),), say=said.append)
    urls = deployment.deploy(web=False)
    again_said: list[str] = []
    deployment.say = again_said.append
    again_urls = deployment.deploy(web=False)
    log_retention = log_retention_days(on_moto, f"/aws/lambda/ephemera-{stage}")
    return DeployRun(on_moto, stage, project, infra, urls, said, again_said, again_urls,
                     deployment, log_retention)


def test_the_first_deploy_runs_chalice_twice_to_name_the_new_websocket_api(deployed):
    assert [line for line in deployed.said if line.startswith("chalice deploy")] == [
        "chalice deploy", "chalice deploy (the policy now names this WebSocket API)"]


def test_a_second_deploy_changes_nothing_and_runs_chalice_once(deployed):
    assert [line for line in deployed.again_said if line.startswith("chalice deploy")] == [
        "chalice deploy"]
    assert deployed.again_urls == deployed.urls


def test_every_functions_logs_are_kept_14_days_not_forever(deployed):
    names = function_names(deployed.endpoint, deployed.stage)
    recorded = [r for r in deployed_resources(deployed.project, deployed.stage)
                if r["resource_type"] == "lambda_function"]

    assert len(names) == len(recorded) >= 8
    assert deployed.log_retention == {f"/aws/lambda/{name}": 14 for name in names}
    assert f"logs: {len(names)} functions' logs kept 14 days" in deployed.said


def test_the_urls_printed_are_the_deployed_apis(deployed):
    apis = deployed_apis(deployed.project, deployed.stage)

    assert deployed.urls == {
        "rest": f"https://{apis.rest_api_id}.execute-api.{REGION}.amazonaws.com/api/",
        "websocket": f"wss://{apis.websocket_api_id}.execute-api.{REGION}.amazonaws.com/api",
        "dashboard": f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}"
                     f"#dashboards:name=ephemera-{deployed.stage}"}


def test_the_websocket_addresses_are_in_ssm_where_the_lambdas_read_them(deployed):
    apis = deployed_apis(deployed.project, deployed.stage)
    ssm = boto3.client("ssm", region_name=REGION)
    host = f"{apis.websocket_api_id}.execute-api.{REGION}.amazonaws.com"

    def value(name: str) -> str:
        return ssm.get_parameter(Name=f"/ephemera/{deployed.stage}/{name}")["Parameter"]["Value"]

    assert value("ws-management-endpoint") == f"https://{host}/api"
    assert value("ws-public-url") == f"wss://{host}/api"


def test_every_function_runs_in_the_stacks_subnets_and_reaches_the_proxy(deployed):
    names = function_names(deployed.endpoint, deployed.stage)

    assert {name.removeprefix(f"ephemera-{deployed.stage}") for name in names} >= {
        "", "-websocket_connect", "-websocket_message", "-websocket_disconnect",
        "-scheduled_cleanup", "-presence_watch", "-migrate", "-fanout_worker"}
    for name in names:
        found = function(deployed.endpoint, name)
        assert sorted(found["VpcConfig"]["SubnetIds"]) == sorted(deployed.infra.subnet_ids)
        assert found["VpcConfig"]["SecurityGroupIds"] == [deployed.infra.security_group_id]
        env = found["Environment"]
        assert env["DATABASE_URL"] == deployed.infra.database_url
        assert env["DB_SECRET_ARN"] == deployed.infra.database_secret_arn
        assert env["JWT_SECRET_ARN"] == deployed.infra.jwt_secret_arn
        assert env["WS_PARAMETER_PREFIX"] == f"/ephemera/{deployed.stage}"
        assert env["FANOUT_QUEUE_URL"] == deployed.infra.fanout_queue_url
        assert env["STAGE"] == deployed.stage


def test_the_fanout_queue_gives_a_batch_five_tries_then_its_dead_letter_queue(deployed):
    sqs = boto3.client("sqs", region_name=REGION)
    names = ["VisibilityTimeout", "RedrivePolicy", "SqsManagedSseEnabled",
             "MessageRetentionPeriod", "QueueArn"]
    queue = sqs.get_queue_attributes(QueueUrl=deployed.infra.fanout_queue_url,
                                     AttributeNames=names)["Attributes"]
    dlq_url = sqs.get_queue_url(QueueName=f"ephemera-{deployed.stage}-fanout-dlq")["QueueUrl"]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=names)["Attributes"]

    assert deployed.infra.fanout_queue_url.endswith(f"/ephemera-{deployed.stage}-fanout")
    assert queue["QueueArn"] == deployed.infra.fanout_queue_arn
    assert queue["VisibilityTimeout"] == "180"
    assert json.loads(queue["RedrivePolicy"]) == {"deadLetterTargetArn": dlq["QueueArn"],
                                                  "maxReceiveCount": 5}
    assert (queue["SqsManagedSseEnabled"], dlq["SqsManagedSseEnabled"]) == ("true", "true")
    assert dlq["MessageRetentionPeriod"] == "86400"


def test_the_fanout_worker_takes_the_stacks_queue_one_message_at_a_time(deployed):
    (mapping,) = queue_mappings(deployed.endpoint, f"ephemera-{deployed.stage}-fanout_worker")

    assert mapping["EventSourceArn"] == deployed.infra.fanout_queue_arn
    assert mapping["BatchSize"] == 1


def test_every_role_carries_the_policy_narrowed_to_this_websocket_api(deployed):
    apis = deployed_apis(deployed.project, deployed.stage)
    account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
    expected = lambda_policy(deployed.stage, account=account, region=REGION,
                             infra=deployed.infra, websocket_api_id=apis.websocket_api_id)
    iam = boto3.client("iam", region_name=REGION)

    for name in function_names(deployed.endpoint, deployed.stage):
        role = function(deployed.endpoint, name)["Role"].rsplit("/", 1)[-1]
        (policy_name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
        assert document == expected, role
    assert apis.websocket_api_id in json.dumps(expected)


def test_api_gateways_own_errors_carry_the_apps_cors_headers(deployed):
    apis = deployed_apis(deployed.project, deployed.stage)
    apigateway = boto3.client("apigateway", region_name=REGION)

    for response_type in ("DEFAULT_4XX", "DEFAULT_5XX"):
        response = apigateway.get_gateway_response(restApiId=apis.rest_api_id,
                                                   responseType=response_type)
        headers = response["responseParameters"]
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"
        assert "Retry-After" in headers["gatewayresponse.header.Access-Control-Expose-Headers"]


def test_the_policy_grants_sending_and_consuming_on_the_stacks_queue_only(deployed):
    rendered = json.loads(
        (deployed.project / ".chalice" / f"policy-{deployed.stage}.json").read_text())

    grants = {}
    for statement in rendered["Statement"]:
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            if action.startswith("sqs:"):
                grants[action] = statement["Resource"]
    assert grants == dict.fromkeys(
        ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
         "sqs:ChangeMessageVisibility"], deployed.infra.fanout_queue_arn)


def test_the_alarms_stack_is_deployed_with_its_topic_and_dashboard(deployed):
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    (stack,) = cloudformation.describe_stacks(
        StackName=operate_stack_name(deployed.stage))["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    topics = boto3.client("sns", region_name=REGION).list_topics()["Topics"]
    body = json.loads(boto3.client("cloudwatch", region_name=REGION).get_dashboard(
        DashboardName=f"ephemera-{deployed.stage}")["DashboardBody"])

    assert outputs["AlarmTopicArn"].endswith(f":ephemera-{deployed.stage}-alarms")
    assert {"TopicArn": outputs["AlarmTopicArn"]} in topics
    lambdas = {line[3] for widget in body["widgets"]
               for line in widget["properties"].get("metrics", []) if line[0] == "AWS/Lambda"}
    names = function_names(deployed.endpoint, deployed.stage)
    assert lambdas == names - {f"ephemera-{deployed.stage}-migrate"}
    assert f"operate: stack ephemera-{deployed.stage}-operate (alarms, dashboard)" in deployed.said


def test_the_rendered_policy_file_is_the_one_deployed(deployed):
    rendered = json.loads(
        (deployed.project / ".chalice" / f"policy-{deployed.stage}.json").read_text())
    apis = deployed_apis(deployed.project, deployed.stage)

    (push,) = [s for s in rendered["Statement"] if s["Sid"] == "PushToThisApisConnections"]
    assert f":{apis.websocket_api_id}/api/*/@connections/*" in push["Resource"]


def test_destroy_removes_the_app_and_its_addresses_then_the_infra(deployed):
    stage = deployed.stage

    deployed.deployment.destroy()

    assert function_names(deployed.endpoint, stage) == set()
    assert queue_mappings(deployed.endpoint, f"ephemera-{stage}-fanout_worker") == []
    ssm = boto3.client("ssm", region_name=REGION)
    names = [f"/ephemera/{stage}/ws-public-url", f"/ephemera/{stage}/ws-management-endpoint"]
    assert ssm.get_parameters(Names=names)["Parameters"] == []
    stacks = boto3.client("cloudformation", region_name=REGION).list_stacks()["StackSummaries"]
    for name in (infra_stack_name(stage), operate_stack_name(stage)):
        assert {s["StackStatus"] for s in stacks if s["StackName"] == name} == {
            "DELETE_COMPLETE"}, name
    dashboards = boto3.client("cloudwatch", region_name=REGION).list_dashboards()
    assert f"ephemera-{stage}" not in [d["DashboardName"] for d in dashboards["DashboardEntries"]]


def test_a_stack_is_created_then_updated_in_place_with_its_outputs_returned(on_moto, tmp_path):
    template = tmp_path / "stack.yaml"
    template.write_text(STAND_IN_INFRA)
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    # A stage of its own: the stand-in's queues are named after it.
    parameters = {"Stage": "stacktest", "DatabaseSecretArn": "arn:db-1",
                  "JwtSecretArn": "arn:jwt-1"}

    created = deploy_stack(cloudformation, "ephemera-stack-test", template, parameters)
    updated = deploy_stack(cloudformation, "ephemera-stack-test", template,
                           {**parameters, "JwtSecretArn": "arn:jwt-2"})

    assert (created["JwtSecretArn"], updated["JwtSecretArn"]) == ("arn:jwt-1", "arn:jwt-2")
    assert updated["SubnetIds"] == created["SubnetIds"]
    stacks = cloudformation.describe_stacks(StackName="ephemera-stack-test")["Stacks"]
    assert len(stacks) == 1
    cloudformation.delete_stack(StackName="ephemera-stack-test")


def test_a_parameter_not_given_keeps_the_stacks_previous_value(on_moto, tmp_path):
    """`make deploy` without ALARM_EMAIL keeps the subscription someone set before; an empty
    one removes it."""
    template = tmp_path / "topic.yaml"
    template.write_text("Parameters:\n  AlarmEmail: {Type: String, Default: ''}\n"
                        "Resources:\n  Topic: {Type: AWS::SNS::Topic}\n"
                        "Outputs:\n  Email: {Value: !Ref AlarmEmail}\n")
    cloudformation = boto3.client("cloudformation", region_name=REGION)

    created = deploy_stack(cloudformation, "ephemera-keep-test", template,
                           {"AlarmEmail": "ops@example.com"})
    kept = deploy_stack(cloudformation, "ephemera-keep-test", template, {"AlarmEmail": None})
    cleared = deploy_stack(cloudformation, "ephemera-keep-test", template, {"AlarmEmail": ""})
    fresh = deploy_stack(cloudformation, "ephemera-keep-test-2", template, {"AlarmEmail": None})

    assert [created["Email"], kept["Email"], cleared.get("Email", "")] == [
        "ops@example.com", "ops@example.com", ""]
    assert fresh.get("Email", "") == ""
    for name in ("ephemera-keep-test", "ephemera-keep-test-2"):
        cloudformation.delete_stack(StackName=name)


def test_the_web_client_is_uploaded_with_an_index_that_loads_its_config(on_moto, tmp_path):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(
        "<!doctype html><html><head><script type=module src=/assets/app-1a2b.js></script>"
        "</head><body></body></html>")
    (dist / "assets" / "app-1a2b.js").write_text("console.log('app')")
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="ephemera-dev-web")
    apis = DeployedApis(rest_api_id="r3st", websocket_api_id="w5ck")
    script = web_client_config(apis, REGION, "dev")

    count = publish_web_client(s3, "ephemera-dev-web", script, dist)

    assert count == 3
    index = s3.get_object(Bucket="ephemera-dev-web", Key="index.html")
    assert index["ContentType"] == "text/html; charset=utf-8"
    assert index["CacheControl"] == "no-cache"
    assert b'<script src="/config.js"></script></head>' in index["Body"].read()
    config = s3.get_object(Bucket="ephemera-dev-web", Key=CONFIG_SCRIPT)["Body"].read().decode()
    assert json.loads(config.removeprefix("window.EPHEMERA_CONFIG = ").rstrip(";\n")) == {
        "apiBaseUrl": f"https://r3st.execute-api.{REGION}.amazonaws.com/api",
        "wsUrl": f"wss://w5ck.execute-api.{REGION}.amazonaws.com/api", "stage": "dev"}
    asset = s3.get_object(Bucket="ephemera-dev-web", Key="assets/app-1a2b.js")
    assert asset["ContentType"] == "text/javascript"
    assert asset["CacheControl"] == "public, max-age=31536000, immutable"

