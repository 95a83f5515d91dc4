"""`make infra`, `make deploy` and `make destroy`: what `chalice deploy` cannot do, in order.

    python -m infra.deploy infra   --stage dev   # VPC, database, proxy, JWT secret, queues
    python -m infra.deploy deploy  --stage dev   # the app, SSM addresses, migrations, alarms, web
    python -m infra.deploy destroy --stage dev   # everything above, newest first

`deploy` reads the infra stack's outputs into `.chalice/config.json` (the stage's VPC settings
and environment) and renders the stage's IAM policy (`.chalice/policy-<stage>.json`), runs
`chalice deploy` (with STAGE set: app.py names the fan-out queue it subscribes to from it),
and, because the WebSocket API's id exists only after the first deploy, narrows the policy to
that API and deploys once more when the id was new. It then writes the WebSocket addresses to
SSM, invokes the `migrate` function, deploys the alarms and dashboard (`infra/operate.yaml`),
publishes the web client and prints the URLs. Every step is idempotent: running it again
changes nothing that is right.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.config import WS_MANAGEMENT_ENDPOINT_PARAMETER, WS_PUBLIC_URL_PARAMETER

APP_NAME = "ephemera"
API_STAGE = "api"  # `api_gateway_stage` in .chalice/config.json
STAGES = ("dev", "prod")
PROJECT_DIR = Path(__file__).resolve().parents[1]
INFRA_TEMPLATE = PROJECT_DIR / "infra" / "stack.yaml"
WEB_TEMPLATE = PROJECT_DIR / "infra" / "web.yaml"
OPERATE_TEMPLATE = PROJECT_DIR / "infra" / "operate.yaml"
WEB_DIST = PROJECT_DIR / "web" / "dist"
CONFIG_SCRIPT = "config.js"
# How long CloudWatch keeps the functions' logs (docs/PRIVACY.md).
LOG_RETENTION_DAYS = 14


def infra_stack_name(stage: str) -> str:
    return f"{APP_NAME}-{stage}"


def web_stack_name(stage: str) -> str:
    return f"{APP_NAME}-{stage}-web"


def operate_stack_name(stage: str) -> str:
    return f"{APP_NAME}-{stage}-operate"


def parameter_prefix(stage: str) -> str:
    """The SSM path of the stage's WebSocket addresses (the Lambdas' `WS_PARAMETER_PREFIX`)."""
    return f"/{APP_NAME}/{stage}"


def function_name(stage: str, name: str) -> str:
    """Chalice's name for a deployed function."""
    return f"{APP_NAME}-{stage}-{name}"


@dataclass(frozen=True)
class InfraOutputs:
    """What `infra/stack.yaml` hands the app (its stack outputs)."""

    subnet_ids: tuple[str, ...]
    security_group_id: str
    database_proxy_endpoint: str
    database_name: str
    database_user: str
    database_secret_arn: str
    jwt_secret_arn: str
    fanout_queue_url: str
    fanout_queue_arn: str

    @classmethod
    def from_outputs(cls, outputs: dict[str, str]) -> InfraOutputs:
        return cls(
            subnet_ids=tuple(s.strip() for s in outputs["SubnetIds"].split(",") if s.strip()),
            security_group_id=outputs["LambdaSecurityGroupId"],
            database_proxy_endpoint=outputs["DatabaseProxyEndpoint"],
            database_name=outputs["DatabaseName"],
            database_user=outputs["DatabaseUser"],
            database_secret_arn=outputs["DatabaseSecretArn"],
            jwt_secret_arn=outputs["JwtSecretArn"],
            fanout_queue_url=outputs["FanoutQueueUrl"],
            fanout_queue_arn=outputs["FanoutQueueArn"],
        )

    @property
    def database_url(self) -> str:
        # No password: the Lambdas read it from DB_SECRET_ARN. RDS Proxy requires TLS.
        return (f"mysql://{self.database_user}@{self.database_proxy_endpoint}:3306/"
                f"{self.database_name}?tls=required")


@dataclass(frozen=True)
class DeployedApis:
    """The API ids `chalice deploy` recorded in `.chalice/deployed/<stage>.json`."""

    rest_api_id: str
    websocket_api_id: str

    def rest_origin(self, region: str) -> str:
        return f"https://{self.rest_api_id}.execute-api.{region}.amazonaws.com"

    def rest_url(self, region: str) -> str:
        return f"{self.rest_origin(region)}/{API_STAGE}/"

    def websocket_origin(self, region: str) -> str:
        return f"wss://{self.websocket_api_id}.execute-api.{region}.amazonaws.com"

    def websocket_url(self, region: str) -> str:
        return f"{self.websocket_origin(region)}/{API_STAGE}"

    def management_endpoint(self, region: str) -> str:
        return f"https://{self.websocket_api_id}.execute-api.{region}.amazonaws.com/{API_STAGE}"


# --- the stage's configuration and policy ---------------------------------------------------


def lambda_policy(stage: str, *, account: str, region: str, infra: InfraOutputs,
                  websocket_api_id: str | None) -> dict[str, Any]:
    """The one IAM policy of the stage's functions: exactly what `chalicelib/` calls, plus the
    logs and network interfaces Lambda itself needs. Before the first deploy the WebSocket
    API's id is unknown (`None`): the grant then covers the account's APIs on stage `api` until
    `deploy` narrows it, seconds later."""
    api = websocket_api_id or "*"
    prefix = parameter_prefix(stage)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PushToThisApisConnections",
                "Effect": "Allow",
                "Action": "execute-api:ManageConnections",
                "Resource": f"arn:aws:execute-api:{region}:{account}:{api}/{API_STAGE}/*"
                            "/@connections/*",
            },
            {
                # An SMS goes to a phone number, which has no ARN: SNS takes only "*" here.
                "Sid": "SendLoginCodesBySms",
                "Effect": "Allow",
                "Action": "sns:Publish",
                "Resource": "*",
            },
            {
                "Sid": "ReadTheDatabaseAndJwtSecrets",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": [infra.database_secret_arn, infra.jwt_secret_arn],
            },
            {
                "Sid": "ReadTheWebSocketAddresses",
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": [
                    f"arn:aws:ssm:{region}:{account}:parameter{prefix}/"
                    f"{WS_MANAGEMENT_ENDPOINT_PARAMETER}",
                    f"arn:aws:ssm:{region}:{account}:parameter{prefix}/{WS_PUBLIC_URL_PARAMETER}",
                ],
            },
            {
                # SendMessageBatch is authorised by sqs:SendMessage (SQS has no action of its own
                # for the batch).
                "Sid": "QueueBigFanOuts",
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": infra.fanout_queue_arn,
            },
            {
                # Lambda's event source mapping feeds `fanout_worker` with the function's role:
                # it receives, deletes and reads the queue's attributes (what AWS's
                # AWSLambdaSQSQueueExecutionRole grants); ChangeMessageVisibility lets a consumer
                # hand a message back sooner than its timeout. One policy serves every function.
                "Sid": "WorkTheFanOutQueue",
                "Effect": "Allow",
                "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                           "sqs:ChangeMessageVisibility"],
                "Resource": infra.fanout_queue_arn,
            },
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/"
                            f"{APP_NAME}-{stage}-*",
            },
            {
                # What AWSLambdaVPCAccessExecutionRole grants: a function in a VPC runs on
                # network interfaces Lambda creates in its name. These actions take no ARN.
                "Sid": "RunInsideTheVpc",
                "Effect": "Allow",
                "Action": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                           "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
                           "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"],
                "Resource": "*",
            },
        ],
    }


def policy_path(project_dir: Path, stage: str) -> Path:
    return project_dir / ".chalice" / f"policy-{stage}.json"


def configure_stage(project_dir: Path, stage: str, infra: InfraOutputs, policy: dict) -> bool:
    """Write the infra outputs into the stage of `.chalice/config.json` and the policy into
    `.chalice/policy-<stage>.json`; True when either file changed."""
    config_path = project_dir / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    settings = config["stages"][stage]
    settings["subnet_ids"] = list(infra.subnet_ids)
    settings["security_group_ids"] = [infra.security_group_id]
    settings["environment_variables"].update({
        "DATABASE_URL": infra.database_url,
        "DB_SECRET_ARN": infra.database_secret_arn,
        "JWT_SECRET_ARN": infra.jwt_secret_arn,
        "FANOUT_QUEUE_URL": infra.fanout_queue_url,
    })
    changed = _write_json(config_path, config)
    return _write_json(policy_path(project_dir, stage), policy) or changed


def _write_json(path: Path, document: dict) -> bool:
    text = json.dumps(document, indent=2) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def deployed_resources(project_dir: Path, stage: str) -> list[dict[str, Any]]:
    """What the stage's last `chalice deploy` recorded (nothing before the first one)."""
    path = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    return json.loads(path.read_text())["resources"] if path.exists() else []


def deployed_apis(project_dir: Path, stage: str) -> DeployedApis | None:
    """The API ids of the stage's last `chalice deploy`, or None before the first one."""
    resources = {r["name"]: r for r in deployed_resources(project_dir, stage)}
    if not resources:
        return None
    return DeployedApis(rest_api_id=resources["rest_api"]["rest_api_id"],
                        websocket_api_id=resources["websocket_api"]["websocket_api_id"])


# --- AWS steps ------------------------------------------------------------------------------


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def deploy_stack(cloudformation: Any, stack_name: str, template: Path,
                 parameters: dict[str, str | None]) -> dict[str, str]:
    """Create the stack, or update it (no change is not an error); wait; return its outputs.
    A parameter given as None keeps the stack's previous value (its default on creation)."""
    arguments = {
        "StackName": stack_name,
        "TemplateBody": template.read_text(),
        "Capabilities": ["CAPABILITY_IAM"],
    }
    given = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()
             if v is not None]
    try:
        cloudformation.describe_stacks(StackName=stack_name)
    except cloudformation.exceptions.ClientError:
        cloudformation.create_stack(**arguments, Parameters=given)
        cloudformation.get_waiter("stack_create_complete").wait(StackName=stack_name)
    else:
        kept = [{"ParameterKey": k, "UsePreviousValue": True} for k, v in parameters.items()
                if v is None]
        try:
            cloudformation.update_stack(**arguments, Parameters=given + kept)
        except cloudformation.exceptions.ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
        else:
            cloudformation.get_waiter("stack_update_complete").wait(StackName=stack_name)
    return stack_outputs(cloudformation, stack_name)


# API Gateway's own errors (its throttling 429, 413, 502/504) never reach the function, so they
# carry no CORS headers unless told to: a browser would report a network error, not the status.
GATEWAY_ERROR_CORS = {
    "gatewayresponse.header.Access-Control-Allow-Origin": "'*'",
    "gatewayresponse.header.Access-Control-Allow-Headers": "'Authorization,Content-Type'",
    "gatewayresponse.header.Access-Control-Expose-Headers": "'Retry-After'",
}


def allow_cors_on_gateway_errors(apigateway: Any, rest_api_id: str) -> None:
    """Give API Gateway's default 4XX and 5XX replies the app's CORS headers and redeploy the
    stage (each `chalice deploy` re-imports the API, so this runs after every one)."""
    for response_type in ("DEFAULT_4XX", "DEFAULT_5XX"):
        apigateway.put_gateway_response(restApiId=rest_api_id, responseType=response_type,
                                        responseParameters=GATEWAY_ERROR_CORS)
    apigateway.create_deployment(restApiId=rest_api_id, stageName=API_STAGE,
                                 description="CORS headers on API Gateway's own errors")


def write_endpoint_parameters(ssm: Any, stage: str, region: str,
                              apis: DeployedApis) -> dict[str, str]:
    """Publish the WebSocket addresses where the Lambdas look for them (overwriting)."""
    values = {
        f"{parameter_prefix(stage)}/{WS_MANAGEMENT_ENDPOINT_PARAMETER}":
            apis.management_endpoint(region),
        f"{parameter_prefix(stage)}/{WS_PUBLIC_URL_PARAMETER}": apis.websocket_url(region),
    }
    for name, value in values.items():
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    return values


def delete_endpoint_parameters(ssm: Any, stage: str) -> None:
    names = [f"{parameter_prefix(stage)}/{name}"
             for name in (WS_MANAGEMENT_ENDPOINT_PARAMETER, WS_PUBLIC_URL_PARAMETER)]
    ssm.delete_parameters(Names=names)


def keep_logs(logs: Any, log_group_names: list[str], days: int) -> None:
    """Give each function's log group a retention: CloudWatch keeps a group forever unless
    told, and the logs carry user, device and connection ids (never bodies, codes or tokens;
    docs/PRIVACY.md). Lambda creates a group on its first invocation, so it may not exist yet.
    (Chalice's own `log_retention_in_days` misnames the REST handler's group and breaks
    `chalice package`'s template, as of 1.34.)"""
    for name in log_group_names:
        try:
            logs.create_log_group(logGroupName=name)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        logs.put_retention_policy(logGroupName=name, retentionInDays=days)


def run_migrations(lambda_client: Any, stage: str) -> dict[str, Any]:
    """Invoke the `migrate` function once and return its report; raise when it failed."""
    reply = lambda_client.invoke(FunctionName=function_name(stage, "migrate"),
                                 InvocationType="RequestResponse", Payload=b"{}")
    payload = reply["Payload"].read().decode() or "null"
    if reply.get("FunctionError"):
        raise RuntimeError(f"the migrate function failed: {payload}")
    return json.loads(payload)


def web_client_config(apis: DeployedApis, region: str, stage: str) -> str:
    """`config.js`, loaded by the page before the app (the CSP allows only same-origin
    scripts). The page calls the REST API directly (CORS), so API Gateway sees the user's own
    address, not CloudFront's."""
    config = {"apiBaseUrl": apis.rest_url(region).rstrip("/"),
              "wsUrl": apis.websocket_url(region), "stage": stage}
    return f"window.EPHEMERA_CONFIG = {json.dumps(config)};\n"


def publish_web_client(s3: Any, bucket: str, config_script: str, dist: Path = WEB_DIST) -> int:
    """Upload the built client, its `config.js`, and an index that loads it; return the count.
    Hashed assets are cached for a year, the index and the config never."""
    if not (dist / "index.html").is_file():
        raise RuntimeError(f"{dist}/index.html is missing: build the web client first")
    uploads: dict[str, tuple[bytes, str, str]] = {}
    for path in sorted(p for p in dist.rglob("*") if p.is_file()):
        key = path.relative_to(dist).as_posix()
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        uploads[key] = (path.read_bytes(), content_type, "public, max-age=31536000, immutable")
    index = (dist / "index.html").read_text(encoding="utf-8").replace(
        "</head>", f'<script src="/{CONFIG_SCRIPT}"></script></head>', 1)
    uploads["index.html"] = (index.encode(), "text/html; charset=utf-8", "no-cache")
    uploads[CONFIG_SCRIPT] = (config_script.encode(), "text/javascript; charset=utf-8",
                              "no-cache")
    for key, (body, content_type, cache_control) in uploads.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                      CacheControl=cache_control)
    return len(uploads)


def empty_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})


# --- the commands ---------------------------------------------------------------------------


class Deployment:
    """One stage's deploy, with the AWS clients and the `chalice` command it drives."""

    def __init__(self, stage: str, *, session: Any, project_dir: Path = PROJECT_DIR,
                 chalice: tuple[str, ...] = ("chalice",), say: Any = print,
                 alarm_email: str | None = None) -> None:
        if stage not in STAGES:
            raise SystemExit(f"STAGE must be one of {', '.join(STAGES)} (got {stage!r})")
        self.stage = stage
        self.session = session
        self.region = session.region_name
        self.project_dir = project_dir
        self.chalice_command = chalice
        self.say = say
        self.alarm_email = alarm_email  # None keeps the operate stack's current subscription

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def chalice(self, *args: str) -> None:
        command = [*self.chalice_command, "--project-dir", str(self.project_dir), *args,
                   "--stage", self.stage]
        # app.py names the fan-out queue it subscribes to after STAGE, read at import.
        subprocess.run(command, check=True, env={**os.environ, "STAGE": self.stage})

    def infra(self) -> InfraOutputs:
        self.say(f"infra: stack {infra_stack_name(self.stage)} (this takes 15-25 minutes "
                 "the first time: RDS and its proxy)")
        outputs = deploy_stack(self.client("cloudformation"), infra_stack_name(self.stage),
                               INFRA_TEMPLATE, {"Stage": self.stage})
        return InfraOutputs.from_outputs(outputs)

    def deploy(self, *, web: bool = True) -> dict[str, str]:
        cloudformation = self.client("cloudformation")
        try:
            outputs = stack_outputs(cloudformation, infra_stack_name(self.stage))
        except cloudformation.exceptions.ClientError as exc:
            raise SystemExit(f"no stack {infra_stack_name(self.stage)}: run "
                             f"`make infra STAGE={self.stage}` first") from exc
        if "FanoutQueueUrl" not in outputs:  # a stack made before the fan-out queue existed
            raise SystemExit(f"stack {infra_stack_name(self.stage)} has no fan-out queue yet: "
                             f"run `make infra STAGE={self.stage}` to update it first")
        infra = InfraOutputs.from_outputs(outputs)
        account = self.client("sts").get_caller_identity()["Account"]

        def configure(apis: DeployedApis | None) -> bool:
            policy = lambda_policy(self.stage, account=account, region=self.region, infra=infra,
                                   websocket_api_id=apis.websocket_api_id if apis else None)
            return configure_stage(self.project_dir, self.stage, infra, policy)

        configure(deployed_apis(self.project_dir, self.stage))
        self.say("chalice deploy")
        self.chalice("deploy")
        apis = deployed_apis(self.project_dir, self.stage)
        if apis is None:
            raise RuntimeError(f"chalice deploy recorded no APIs in .chalice/deployed/"
                               f"{self.stage}.json")
        if configure(apis):
            self.say("chalice deploy (the policy now names this WebSocket API)")
            self.chalice("deploy")

        urls = {"rest": apis.rest_url(self.region), "websocket": apis.websocket_url(self.region)}
        allow_cors_on_gateway_errors(self.client("apigateway"), apis.rest_api_id)
        written = write_endpoint_parameters(self.client("ssm"), self.stage, self.region, apis)
        self.say(f"ssm: wrote {', '.join(written)}")
        functions = [resource["lambda_arn"].rsplit(":", 1)[-1] for resource in
                     deployed_resources(self.project_dir, self.stage)
                     if resource["resource_type"] == "lambda_function"]
        keep_logs(self.client("logs"), [f"/aws/lambda/{name}" for name in functions],
                  LOG_RETENTION_DAYS)
        self.say(f"logs: {len(functions)} functions' logs kept {LOG_RETENTION_DAYS} days")
        report = run_migrations(self.client("lambda"), self.stage)
        self.say(f"migrations: {json.dumps(report)}")
        urls["dashboard"] = self.operate()
        if web:
            urls["web"] = self.publish_web(apis)
        return urls

    def operate(self) -> str:
        """The alarms, their SNS topic and the dashboard; returns the dashboard's URL."""
        self.say(f"operate: stack {operate_stack_name(self.stage)} (alarms, dashboard)")
        outputs = deploy_stack(self.client("cloudformation"), operate_stack_name(self.stage),
                               OPERATE_TEMPLATE,
                               {"Stage": self.stage, "AlarmEmail": self.alarm_email})
        return outputs["DashboardUrl"]

    def publish_web(self, apis: DeployedApis) -> str:
        self.say(f"web: stack {web_stack_name(self.stage)}")
        parameters = {"Stage": self.stage, "RestApiOrigin": apis.rest_origin(self.region),
                      "WebSocketOrigin": apis.websocket_origin(self.region)}
        outputs = deploy_stack(self.client("cloudformation"), web_stack_name(self.stage),
                               WEB_TEMPLATE, parameters)
        script = web_client_config(apis, self.region, self.stage)
        count = publish_web_client(self.client("s3"), outputs["BucketName"], script)
        self.say(f"web: uploaded {count} files to {outputs['BucketName']}")
        return outputs["WebUrl"]

    def destroy(self, *, infra: bool = True) -> None:
        cloudformation = self.client("cloudformation")
        web = web_stack_name(self.stage)
        try:
            outputs = stack_outputs(cloudformation, web)
        except cloudformation.exceptions.ClientError:
            outputs = None
        if outputs is not None:
            self.say(f"web: emptying {outputs['BucketName']}, deleting stack {web}")
            empty_bucket(self.client("s3"), outputs["BucketName"])
            _delete_stack(cloudformation, web)
        operate = operate_stack_name(self.stage)
        if _stack_exists(cloudformation, operate):
            self.say(f"operate: deleting stack {operate}")
            _delete_stack(cloudformation, operate)
        if deployed_apis(self.project_dir, self.stage) is not None:
            self.say("chalice delete")
            self.chalice("delete")
        delete_endpoint_parameters(self.client("ssm"), self.stage)
        if infra:
            self.say(f"infra: deleting stack {infra_stack_name(self.stage)} (prod's database "
                     "has deletion protection: turn it off first, deliberately)")
            _delete_stack(cloudformation, infra_stack_name(self.stage))


def _stack_exists(cloudformation: Any, stack_name: str) -> bool:
    try:
        cloudformation.describe_stacks(StackName=stack_name)
    except cloudformation.exceptions.ClientError:
        return False
    return True


def _delete_stack(cloudformation: Any, stack_name: str) -> None:
    cloudformation.delete_stack(StackName=stack_name)
    cloudformation.get_waiter("stack_delete_complete").wait(StackName=stack_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("infra", "deploy", "destroy"))
    parser.add_argument("--stage", required=True, choices=STAGES)
    parser.add_argument("--no-web", action="store_true",
                        help="deploy: skip the web client (S3 + CloudFront)")
    parser.add_argument("--keep-infra", action="store_true",
                        help="destroy: keep the VPC, database and secrets")
    parser.add_argument("--alarm-email", default=os.environ.get("ALARM_EMAIL"),
                        help="deploy: mail the alarms here (env ALARM_EMAIL; an empty string "
                             "unsubscribes; not given keeps the current subscription)")
    args = parser.parse_args(argv)

    import boto3

    chalice = (str(Path(sys.executable).with_name("chalice")),)
    deployment = Deployment(args.stage, session=boto3.session.Session(), chalice=chalice,
                            alarm_email=args.alarm_email)
    if args.command == "infra":
        print(json.dumps(deployment.infra().__dict__, indent=2))
    elif args.command == "deploy":
        urls = deployment.deploy(web=not args.no_web)
        print("\nDeployed:")
        for name, url in urls.items():
            print(f"  {name:<9} {url}")
    else:
        deployment.destroy(infra=not args.keep_infra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
