"""Reusable pieces for tests that run `chalice deploy` against a local moto server.

- `start_moto_server()` / `stop_moto_server()`: the shimmed moto server
  (tests/deploy/moto_server.py) as a subprocess on a free port, configured so Lambda never
  needs Docker. The session fixture `moto_endpoint` (tests/deploy/conftest.py) wraps them.
- `aws_env(endpoint)`: the environment for a subprocess (chalice, boto3) that must talk to it.
- `project_copy(tmp_path)`: what `chalice deploy` reads, copied, so the working tree's
  `.chalice/deployed` is never touched; `set_stage_config()` edits the copy's config.json.
- `chalice(project_dir, *args, env=...)`: runs the venv's chalice; a failure fails the test with
  its output.
- Read-back helpers over boto3 against moto: `deployed()`, `function()`, `function_names()`,
  `schedule_rule()`, `rest_api_integrations()`, `websocket_routes()`, `rest_api_exists()`,
  `websocket_api_exists()`, `queue_mappings()`; and `create_fanout_queue()` /
  `delete_fanout_queue()`, the queue that `infra/stack.yaml` makes and the fan-out worker's
  event source needs to exist.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CHALICE = VENV_BIN / "chalice"
REGION = "us-east-1"
APP_NAME = "ephemera"
# Chalice's defaults for a function that config.json leaves alone.
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 60

# --- the moto server ----------------------------------------------------------------------------



def _request(url: str, body: dict | None = None, timeout: float = 2) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=timeout) as reply:
        return reply.read()


def start_moto_server(log_path: Path, timeout_s: float = 30) -> tuple[subprocess.Popen, str]:
    """Start `python -m tests.deploy.moto_server` on a free port; return (process, endpoint URL)
    once it answers, with Lambda set to run without Docker (so `lambda invoke` answers too)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.deploy.moto_server", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=aws_env(endpoint),
    )
    log.close()
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited ({process.returncode}):\n"
                               + log_path.read_text(errors="replace"))
        try:
            _request(f"{endpoint}/moto-api/config")
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                stop_moto_server(process)
                raise RuntimeError(f"moto server did not answer on {endpoint} in {timeout_s} s:\n"
                                   + log_path.read_text(errors="replace")) from None
            time.sleep(0.1)
    # moto's Lambda runs functions in Docker by default; its config API turns that off (invoke
    # then answers moto's stub result instead of running the code).
    config = json.loads(_request(f"{endpoint}/moto-api/config", {"lambda": {"use_docker": False}}))
    assert config["lambda"] == {"use_docker": False}, config
    return process, endpoint


def stop_moto_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def aws_env(endpoint: str, stage: str | None = None) -> dict[str, str]:
    """This process's environment pointed at moto: every AWS SDK call (chalice, boto3, the AWS
    CLI) goes to `endpoint` in us-east-1 with dummy credentials, never to a real account. With
    a stage, STAGE too: app.py names the fan-out queue it subscribes to after it at import."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("AWS_") or key == "AWS_CA_BUNDLE"}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Ephemera")
    if stage is not None:
        env["STAGE"] = stage
    return env


def client(endpoint: str, service: str) -> Any:
    """A boto3 client for `service` on moto."""
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


# --- the project --------------------------------------------------------------------------------


def project_copy(tmp_path: Path) -> Path:
    """What `chalice deploy` reads (app.py, chalicelib/, requirements.txt, .chalice/config.json,
    .chalice/policy-*.json), copied under `tmp_path`. A stage whose config turns `autogen_policy`
    off without a policy file present gets a minimal one (logs only) in the copy."""
    project = tmp_path / "project"
    (project / ".chalice").mkdir(parents=True)
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(REPO / name, project / name)
    shutil.copytree(REPO / "chalicelib", project / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(REPO / ".chalice" / "config.json", project / ".chalice" / "config.json")
    for policy in (REPO / ".chalice").glob("policy-*.json"):
        shutil.copy2(policy, project / ".chalice" / policy.name)
    config = read_config(project)
    for stage in config.get("stages", {}):
        _ensure_policy_file(project, stage_config(project, stage))
    return project


MINIMAL_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": "arn:aws:logs:*:*:*",
    }],
}


def _ensure_policy_file(project: Path, settings: dict[str, Any]) -> None:
    if settings.get("autogen_policy", True) is not False:
        return
    policy = project / ".chalice" / settings.get("iam_policy_file", "policy.json")
    if not policy.exists():
        policy.write_text(json.dumps(MINIMAL_POLICY, indent=2))


def read_config(project: Path) -> dict[str, Any]:
    return json.loads((project / ".chalice" / "config.json").read_text())


def stage_config(project: Path, stage: str) -> dict[str, Any]:
    """The stage's settings over the top-level ones (as Chalice merges them; `lambda_functions`
    and `environment_variables` kept as the stage's own)."""
    config = read_config(project)
    merged = {key: value for key, value in config.items() if key != "stages"}
    merged.update(config["stages"][stage])
    return merged


def function_config(project: Path, stage: str, name: str) -> dict[str, Any]:
    """One function's settings: `lambda_functions.<name>` over the stage's over the top level."""
    merged = stage_config(project, stage)
    merged.update(merged.get("lambda_functions", {}).get(name, {}))
    return merged


def set_stage_config(project: Path, stage: str, **values: Any) -> None:
    """Write settings into the copy's `stages.<stage>` (and its policy file if now needed)."""
    path = project / ".chalice" / "config.json"
    config = json.loads(path.read_text())
    config["stages"][stage].update(values)
    path.write_text(json.dumps(config, indent=2))
    _ensure_policy_file(project, stage_config(project, stage))


# --- chalice ------------------------------------------------------------------------------------


def chalice(project_dir: Path, *args: str, env: dict[str, str],
            timeout_s: float = 600) -> subprocess.CompletedProcess:
    """`chalice --project-dir <project_dir> <args>`; fails the test with its output on error."""
    command = [str(CHALICE), "--project-dir", str(project_dir), *args]
    result = subprocess.run(command, cwd=project_dir, env=env, capture_output=True, text=True,
                            timeout=timeout_s, check=False)
    if result.returncode != 0:
        pytest.fail(f"`chalice {' '.join(args)}` exited {result.returncode}\n"
                    f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}", pytrace=False)
    return result


def deployed(project_dir: Path, stage: str) -> dict[str, dict[str, Any]]:
    """`.chalice/deployed/<stage>.json`'s resources by name (`api_handler`, `rest_api`,
    `websocket_api`, `scheduled_cleanup-event`, ...), or {} when there is none."""
    path = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    if not path.exists():
        return {}
    return {item["name"]: item for item in json.loads(path.read_text())["resources"]}


# --- read-back from moto ------------------------------------------------------------------------


def function_name(stage: str, name: str) -> str:
    """Chalice's Lambda name: `ephemera-<stage>` for the REST handler, else with `-<name>`."""
    return f"{APP_NAME}-{stage}" if name == "api_handler" else f"{APP_NAME}-{stage}-{name}"


def function_names(endpoint: str, stage: str) -> set[str]:
    """Names of the stage's Lambda functions that exist."""
    prefix = f"{APP_NAME}-{stage}"
    names: set[str] = set()
    for page in client(endpoint, "lambda").get_paginator("list_functions").paginate():
        names.update(f["FunctionName"] for f in page["Functions"]
                     if f["FunctionName"] == prefix or f["FunctionName"].startswith(prefix + "-"))
    return names


def function(endpoint: str, name: str) -> dict[str, Any]:
    """A function's configuration (`Handler`, `Role`, `MemorySize`, `Timeout`, `VpcConfig`,
    `Environment`, ...) plus `ReservedConcurrentExecutions` (None when unset)."""
    lam = client(endpoint, "lambda")
    found = lam.get_function_configuration(FunctionName=name)
    concurrency = lam.get_function_concurrency(FunctionName=name)
    found["ReservedConcurrentExecutions"] = concurrency.get("ReservedConcurrentExecutions")
    found["Environment"] = found.get("Environment", {}).get("Variables", {})
    return found


def role_exists(endpoint: str, role_arn: str) -> bool:
    iam = client(endpoint, "iam")
    try:
        iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])
    except iam.exceptions.NoSuchEntityException:
        return False
    return True


def schedule_rule(endpoint: str, rule_name: str) -> dict[str, Any] | None:
    """The EventBridge rule (`ScheduleExpression`, `State`, ...) with its `Targets`, or None."""
    events = client(endpoint, "events")
    try:
        rule = events.describe_rule(Name=rule_name)
    except events.exceptions.ResourceNotFoundException:
        return None
    rule["Targets"] = events.list_targets_by_rule(Rule=rule_name)["Targets"]
    return rule


def rest_api_exists(endpoint: str, rest_api_id: str) -> bool:
    return any(api["id"] == rest_api_id
               for api in client(endpoint, "apigateway").get_rest_apis()["items"])


def rest_api_integrations(endpoint: str, rest_api_id: str) -> dict[tuple[str, str], dict]:
    """Every method of the REST API and its integration (`type`, `uri`, ...), keyed by
    (path, HTTP method)."""
    api = client(endpoint, "apigateway")
    found: dict[tuple[str, str], dict] = {}
    for resource in api.get_resources(restApiId=rest_api_id, limit=500)["items"]:
        for method in resource.get("resourceMethods", {}):
            integration = api.get_integration(restApiId=rest_api_id, resourceId=resource["id"],
                                              httpMethod=method)
            integration.pop("ResponseMetadata", None)
            found[(resource["path"], method)] = integration
    return found


def websocket_api_exists(endpoint: str, api_id: str) -> bool:
    apis = client(endpoint, "apigatewayv2").get_apis()["Items"]
    return any(api["ApiId"] == api_id for api in apis)


def websocket_routes(endpoint: str, api_id: str) -> dict[str, dict[str, Any]]:
    """The WebSocket API's routes by route key (`$connect`, ...), each with its `Integration`."""
    v2 = client(endpoint, "apigatewayv2")
    routes: dict[str, dict[str, Any]] = {}
    for route in v2.get_routes(ApiId=api_id)["Items"]:
        integration_id = route.get("Target", "").removeprefix("integrations/")
        route["Integration"] = (v2.get_integration(ApiId=api_id, IntegrationId=integration_id)
                                if integration_id else None)
        routes[route["RouteKey"]] = route
    return routes


def log_retention_days(endpoint: str, prefix: str) -> dict[str, int | None]:
    """Each log group under `prefix` and its retention (None: kept forever)."""
    groups = client(endpoint, "logs").describe_log_groups(logGroupNamePrefix=prefix)
    return {group["logGroupName"]: group.get("retentionInDays") for group in groups["logGroups"]}


def create_fanout_queue(endpoint: str, stage: str) -> str:
    """The stage's fan-out queue as `infra/stack.yaml` names it (idempotent); its ARN."""
    sqs = client(endpoint, "sqs")
    url = sqs.create_queue(QueueName=f"{APP_NAME}-{stage}-fanout",
                           Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]


def delete_fanout_queue(endpoint: str, stage: str) -> None:
    sqs = client(endpoint, "sqs")
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=f"{APP_NAME}-{stage}-fanout")["QueueUrl"])


def queue_mappings(endpoint: str, function_name: str) -> list[dict[str, Any]]:
    """The function's event source mappings (`EventSourceArn`, `BatchSize`, `State`, ...).
    All are listed and filtered here: moto 5.2.5 filters by the name the mapping was created
    with, and Chalice creates it with the function's ARN."""
    mappings = client(endpoint, "lambda").list_event_source_mappings()["EventSourceMappings"]
    return [m for m in mappings if m["FunctionArn"].endswith(f":function:{function_name}")]
