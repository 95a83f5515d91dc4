"""The CloudFormation templates in `infra/`: cfn-lint finds nothing in them (and does find a
planted mistake), and the templates say what the design promises: a private, encrypted database
reached only through the proxy, only from the Lambdas; short backups; no final snapshot; outputs
named as `make deploy` reads them; a fan-out queue that hands a batch to its dead-letter queue
after five tries and keeps message bodies no longer than the backups do; a web page that may run
only its own scripts, connects only to itself and the two APIs, and reaches the APIs directly (no
API path through CloudFront, so API Gateway sees the user's own address). The alarms and the
dashboard (operate.yaml) have their own tests: test_operate_template.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode.cfn_yaml import load

INFRA = Path(__file__).resolve().parents[2] / "infra"
TEMPLATES = sorted(INFRA.glob("*.yaml"))
STACK = INFRA / "stack.yaml"
WEB = INFRA / "web.yaml"
OPERATE = INFRA / "operate.yaml"
CONFIG = json.loads((INFRA.parent / ".chalice" / "config.json").read_text())

STACK_OUTPUTS = {"SubnetIds", "LambdaSecurityGroupId", "DatabaseProxyEndpoint", "DatabaseName",
                 "DatabaseUser", "DatabaseSecretArn", "JwtSecretArn", "FanoutQueueUrl",
                 "FanoutQueueArn"}
WEB_OUTPUTS = {"BucketName", "DistributionId", "WebUrl"}
OPERATE_OUTPUTS = {"AlarmTopicArn", "DashboardUrl"}
DAY_S = 86_400
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
ANYWHERE = {"0.0.0.0/0", "::/0"}


def _lint(path: Path) -> list[str]:
    """cfn-lint's errors and warnings (its defaults: informational checks are off)."""
    return [f"{m.rule.id} {m.filename}:{m.linenumber} {m.message}" for m in lint_file(path)]


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return load(str(STACK))


@pytest.fixture(scope="module")
def web() -> dict[str, Any]:
    return load(str(WEB))


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _resolve(value: Any, template: dict[str, Any], stage: str) -> Any:
    """The value a property takes for `stage`: evaluates Fn::If on the template's conditions
    (built from Fn::Equals on Ref Stage), leaves every other intrinsic as it is."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        return _resolve(when_true if _condition(template, condition, stage) else when_false,
                        template, stage)
    return value


def _condition(template: dict[str, Any], name: str, stage: str) -> bool:
    left, right = template["Conditions"][name]["Fn::Equals"]
    values = [stage if side == {"Ref": "Stage"} else side for side in (left, right)]
    return values[0] == values[1]


def _exists(template: dict[str, Any], resource: dict[str, Any], stage: str) -> bool:
    return "Condition" not in resource or _condition(template, resource["Condition"], stage)


def _group_id(ref: Any) -> str:
    """The logical id of a security group referenced as !GetAtt X.GroupId or !Ref X."""
    if isinstance(ref, dict) and "Fn::GetAtt" in ref:
        name, attribute = ref["Fn::GetAtt"]
        assert attribute == "GroupId"
        return name
    if isinstance(ref, dict) and "Ref" in ref:
        return ref["Ref"]
    raise AssertionError(f"not a security group reference: {ref!r}")


def _ingress_rules(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every ingress rule, inline or separate, keyed by the logical id of its security group."""
    rules: dict[str, list[dict[str, Any]]] = {
        name: list(group["Properties"].get("SecurityGroupIngress", []))
        for name, group in _resources(template, "AWS::EC2::SecurityGroup").items()}
    for rule in _resources(template, "AWS::EC2::SecurityGroupIngress").values():
        rules[_group_id(rule["Properties"]["GroupId"])].append(rule["Properties"])
    return rules


def _egress_rules(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    rules: dict[str, list[dict[str, Any]]] = {}
    for name, group in _resources(template, "AWS::EC2::SecurityGroup").items():
        # Without inline egress AWS adds an allow-all rule, which separate rules do not remove.
        assert group["Properties"].get("SecurityGroupEgress"), f"{name} would allow all egress"
        rules[name] = [rule for rule in group["Properties"]["SecurityGroupEgress"]
                       if rule.get("CidrIp") != "255.255.255.255/32"]  # the "match nothing" rule
    for rule in _resources(template, "AWS::EC2::SecurityGroupEgress").values():
        rules[_group_id(rule["Properties"]["GroupId"])].append(rule["Properties"])
    return rules


def _mysql_from(rule: dict[str, Any]) -> str:
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 3306, 3306), rule
    return _group_id(rule["SourceSecurityGroupId"])


# ---------------------------------------------------------------- cfn-lint


def test_every_template_is_checked() -> None:
    assert {STACK, WEB, OPERATE} <= set(TEMPLATES)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_template_passes_cfn_lint_without_errors_or_warnings(template: Path) -> None:
    assert _lint(template) == []


@pytest.mark.parametrize(("template", "original", "broken"), [
    (STACK, "Value: !Ref JwtSecret\n", "Value: !Ref JwtSecretThatDoesNotExist\n"),
    (STACK, "StorageEncrypted: true", "StorageEncrypted: maybe"),
    (WEB, "DefaultRootObject: index.html", "DefaultRootObjekt: index.html"),
    (OPERATE, "TreatMissingData: breaching", "TreatMissingData: sometimes"),
], ids=["missing-resource", "invalid-value", "unknown-property", "invalid-alarm"])
def test_cfn_lint_check_fails_a_broken_template(
        tmp_path: Path, template: Path, original: str, broken: str) -> None:
    text = template.read_text()
    assert text.count(original) == 1
    copy = tmp_path / template.name
    copy.write_text(text.replace(original, broken))
    assert _lint(copy) != []


# ---------------------------------------------------------------- the database


def test_database_is_encrypted_and_not_public(stack: dict[str, Any]) -> None:
    (database,) = _resources(stack, "AWS::RDS::DBInstance").values()
    props = database["Properties"]
    assert props["StorageEncrypted"] is True
    assert props["PubliclyAccessible"] is False
    assert props["Engine"] == "mysql"
    default_version = stack["Parameters"][props["EngineVersion"]["Ref"]]["Default"]
    assert default_version.split(".")[:2] in (["8", "0"], ["8", "4"])
    subnet_group = stack["Resources"][props["DBSubnetGroupName"]["Ref"]]
    assert subnet_group["Properties"]["SubnetIds"] == [
        {"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]


@pytest.mark.parametrize(("stage", "protected"), [("dev", False), ("prod", True)])
def test_database_deletion_protection_is_on_for_prod_only(
        stack: dict[str, Any], stage: str, protected: bool) -> None:
    props = stack["Resources"]["Database"]["Properties"]
    assert _resolve(props["DeletionProtection"], stack, stage) is protected
    assert _resolve(props["MultiAZ"], stack, stage) is protected


def test_database_backup_retention_comes_from_the_parameter_and_defaults_to_one_day(
        stack: dict[str, Any]) -> None:
    props = stack["Resources"]["Database"]["Properties"]
    assert props["BackupRetentionPeriod"] == {"Ref": "BackupRetentionDays"}
    parameter = stack["Parameters"]["BackupRetentionDays"]
    assert (parameter["Default"], parameter["MinValue"]) == (1, 1)


def test_deleting_the_stack_leaves_no_snapshot_of_expired_messages(
        stack: dict[str, Any]) -> None:
    database = stack["Resources"]["Database"]
    assert database["DeletionPolicy"] == "Delete"
    assert database["UpdateReplacePolicy"] == "Delete"
    assert database["Properties"]["DeleteAutomatedBackups"] is True


def test_database_password_is_managed_by_rds(stack: dict[str, Any]) -> None:
    props = stack["Resources"]["Database"]["Properties"]
    assert props["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in props
    assert (props["MasterUsername"], props["DBName"]) == ("ephemera", "ephemera")


# ---------------------------------------------------------------- the network


def test_no_security_group_accepts_traffic_from_anywhere(stack: dict[str, Any]) -> None:
    for group, rules in _ingress_rules(stack).items():
        for rule in rules:
            assert rule.get("CidrIp") not in ANYWHERE, group
            assert rule.get("CidrIpv6") not in ANYWHERE, group
            assert "SourceSecurityGroupId" in rule, f"{group} accepts an address range"


def test_database_accepts_connections_only_from_the_proxy(stack: dict[str, Any]) -> None:
    database = stack["Resources"]["Database"]["Properties"]
    (group,) = [_group_id(ref) for ref in database["VPCSecurityGroups"]]
    assert [_mysql_from(rule) for rule in _ingress_rules(stack)[group]] == [
        "ProxySecurityGroup"]


def test_proxy_accepts_connections_only_from_the_lambdas(stack: dict[str, Any]) -> None:
    proxy = stack["Resources"]["DatabaseProxy"]["Properties"]
    (group,) = [_group_id(ref) for ref in proxy["VpcSecurityGroupIds"]]
    assert group == "ProxySecurityGroup"
    assert [_mysql_from(rule) for rule in _ingress_rules(stack)[group]] == [
        "LambdaSecurityGroup"]
    assert stack["Outputs"]["LambdaSecurityGroupId"]["Value"] == {
        "Fn::GetAtt": ["LambdaSecurityGroup", "GroupId"]}


def test_connections_leave_only_along_lambda_proxy_database(stack: dict[str, Any]) -> None:
    egress = _egress_rules(stack)

    def summary(rule: dict[str, Any]) -> tuple[Any, ...]:
        target = (_group_id(rule["DestinationSecurityGroupId"])
                  if "DestinationSecurityGroupId" in rule else rule["CidrIp"])
        return rule["IpProtocol"], rule["FromPort"], rule["ToPort"], target

    assert sorted(map(summary, egress["LambdaSecurityGroup"])) == [
        ("tcp", 443, 443, "0.0.0.0/0"), ("tcp", 3306, 3306, "ProxySecurityGroup")]
    assert [summary(rule) for rule in egress["ProxySecurityGroup"]] == [
        ("tcp", 3306, 3306, "DatabaseSecurityGroup")]
    assert egress["DatabaseSecurityGroup"] == []


def test_proxy_authenticates_with_the_databases_managed_secret(stack: dict[str, Any]) -> None:
    managed_secret = {"Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]}
    proxy = stack["Resources"]["DatabaseProxy"]["Properties"]
    assert proxy["EngineFamily"] == "MYSQL"
    assert proxy["RequireTLS"] is True
    (auth,) = proxy["Auth"]
    assert (auth["AuthScheme"], auth["SecretArn"]) == ("SECRETS", managed_secret)
    role = stack["Resources"][proxy["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
    statements = [s for policy in role["Policies"]
                  for s in policy["PolicyDocument"]["Statement"]]
    assert statements == [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                           "Resource": managed_secret}]
    (target,) = _resources(stack, "AWS::RDS::DBProxyTargetGroup").values()
    assert target["Properties"]["TargetGroupName"] == "default"
    assert target["Properties"]["DBInstanceIdentifiers"] == [{"Ref": "Database"}]
    assert stack["Outputs"]["DatabaseSecretArn"]["Value"] == managed_secret


def test_private_subnets_are_in_two_different_azs(stack: dict[str, Any]) -> None:
    zones = [stack["Resources"][name]["Properties"]["AvailabilityZone"]
             for name in ("PrivateSubnetA", "PrivateSubnetB")]
    assert zones == [{"Fn::Select": [0, {"Fn::GetAZs": ""}]},
                     {"Fn::Select": [1, {"Fn::GetAZs": ""}]}]
    assert stack["Outputs"]["SubnetIds"]["Value"] == {
        "Fn::Join": [",", [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]]}
    proxy = stack["Resources"]["DatabaseProxy"]["Properties"]
    assert proxy["VpcSubnetIds"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]


@pytest.mark.parametrize(("stage", "gateways"), [("dev", 1), ("prod", 2)])
def test_private_subnets_reach_the_internet_only_through_nat(
        stack: dict[str, Any], stage: str, gateways: int) -> None:
    nat = {name for name, r in _resources(stack, "AWS::EC2::NatGateway").items()
           if _exists(stack, r, stage)}
    assert len(nat) == gateways
    associations = {r["Properties"]["SubnetId"]["Ref"]: r["Properties"]["RouteTableId"]["Ref"]
                    for r in _resources(stack, "AWS::EC2::SubnetRouteTableAssociation").values()}
    used = set()
    for subnet in ("PrivateSubnetA", "PrivateSubnetB"):
        (route,) = [r["Properties"] for r in _resources(stack, "AWS::EC2::Route").values()
                    if r["Properties"]["RouteTableId"]["Ref"] == associations[subnet]]
        assert "GatewayId" not in route
        used.add(_resolve(route["NatGatewayId"], stack, stage)["Ref"])
    assert used == nat


def test_jwt_secret_is_generated_per_stage(stack: dict[str, Any]) -> None:
    (secret,) = _resources(stack, "AWS::SecretsManager::Secret").values()
    assert secret["Properties"]["Name"] == {"Fn::Sub": "ephemera/${Stage}/jwt"}
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] == 64
    assert generated["ExcludePunctuation"] is True
    assert stack["Outputs"]["JwtSecretArn"]["Value"] == {"Ref": "JwtSecret"}


def test_stage_is_dev_or_prod(stack: dict[str, Any], web: dict[str, Any]) -> None:
    for template in (stack, web, load(str(OPERATE))):
        assert template["Parameters"]["Stage"]["AllowedValues"] == ["dev", "prod"]


@pytest.mark.parametrize(("template", "names"), [
    (STACK, STACK_OUTPUTS), (WEB, WEB_OUTPUTS), (OPERATE, OPERATE_OUTPUTS),
], ids=["stack", "web", "operate"])
def test_outputs_are_named_as_the_deploy_script_reads_them(
        template: Path, names: set[str]) -> None:
    assert set(load(str(template))["Outputs"]) == names


# ---------------------------------------------------------------- the fan-out queue


def test_a_fanout_goes_to_the_dead_letter_queue_after_five_tries(stack: dict[str, Any]) -> None:
    queue = stack["Resources"]["FanoutQueue"]["Properties"]
    dead_letters = stack["Resources"]["FanoutDeadLetterQueue"]["Properties"]

    assert queue["QueueName"] == {"Fn::Sub": "ephemera-${Stage}-fanout"}
    assert dead_letters["QueueName"] == {"Fn::Sub": "ephemera-${Stage}-fanout-dlq"}
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["FanoutDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5}
    assert "RedrivePolicy" not in dead_letters


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_batch_comes_back_after_six_of_the_workers_timeouts(stack: dict[str, Any],
                                                              stage: str) -> None:
    """AWS's advice for a Lambda event source: the queue's visibility timeout at least six
    times the function's timeout, so a batch is not handed out again while it is worked on."""
    worker = CONFIG["stages"][stage]["lambda_functions"]["fanout_worker"]

    assert worker["lambda_timeout"] == 30
    assert stack["Resources"]["FanoutQueue"]["Properties"]["VisibilityTimeout"] == (
        6 * worker["lambda_timeout"])


def test_both_queues_are_encrypted_with_sqs_managed_keys(stack: dict[str, Any]) -> None:
    for name in ("FanoutQueue", "FanoutDeadLetterQueue"):
        assert stack["Resources"][name]["Properties"]["SqsManagedSseEnabled"] is True, name


def test_queued_message_bodies_outlive_them_no_longer_than_the_backups_do(
        stack: dict[str, Any]) -> None:
    """A queued fan-out carries frames, bodies included. A standard queue's message keeps its
    first enqueue time in the dead-letter queue, so the dead-letter queue's retention bounds
    every copy: by default one day, as long as the database's automated backups keep one, and
    never shorter than the queue's own (a message would vanish on its way to be inspected)."""
    queue = stack["Resources"]["FanoutQueue"]["Properties"]
    dead_letters = stack["Resources"]["FanoutDeadLetterQueue"]["Properties"]
    retention = stack["Parameters"][dead_letters["MessageRetentionPeriod"]["Ref"]]
    backups_days = stack["Parameters"]["BackupRetentionDays"]["Default"]

    assert retention["Default"] == backups_days * DAY_S
    assert retention["MinValue"] >= queue["MessageRetentionPeriod"]
    assert retention["MaxValue"] == 14 * DAY_S  # SQS's longest
    assert queue["MessageRetentionPeriod"] == 3600
    for name in ("FanoutQueue", "FanoutDeadLetterQueue"):
        assert stack["Resources"][name]["DeletionPolicy"] == "Delete", name


def test_the_queues_url_and_arn_are_outputs(stack: dict[str, Any]) -> None:
    assert stack["Outputs"]["FanoutQueueUrl"]["Value"] == {"Ref": "FanoutQueue"}
    assert stack["Outputs"]["FanoutQueueArn"]["Value"] == {"Fn::GetAtt": ["FanoutQueue", "Arn"]}


# ---------------------------------------------------------------- the web client


def _csp(web: dict[str, Any]) -> dict[str, list[str]]:
    policy = web["Resources"]["SecurityHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
    header = policy["SecurityHeadersConfig"]["ContentSecurityPolicy"]
    assert header["Override"] is True
    text = header["ContentSecurityPolicy"]["Fn::Sub"]
    directives = [d.split() for d in text.split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


def test_web_csp_runs_only_own_scripts_and_connects_only_to_self_and_the_two_apis(
        web: dict[str, Any]) -> None:
    csp = _csp(web)
    assert not any("unsafe" in source for sources in csp.values() for source in sources)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'", "${RestApiOrigin}", "${WebSocketOrigin}"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]


def test_web_parameters_are_the_api_origins_deploy_passes_and_nothing_wider(
        web: dict[str, Any]) -> None:
    """Each API parameter lands in connect-src as it is: it must be one exact origin (scheme and
    execute-api host, no path, no wildcard), the one `publish_web` derives from the API id."""
    from infra.deploy import DeployedApis

    apis = DeployedApis(rest_api_id="a1b2c3d4e5", websocket_api_id="f6g7h8i9j0")
    assert set(web["Parameters"]) == {"Stage", "RestApiOrigin", "WebSocketOrigin"}
    rest = re.compile(web["Parameters"]["RestApiOrigin"]["AllowedPattern"])
    websocket = re.compile(web["Parameters"]["WebSocketOrigin"]["AllowedPattern"])
    for region in ("us-east-1", "eu-central-1", "ap-southeast-2"):
        assert rest.fullmatch(apis.rest_origin(region))
        assert websocket.fullmatch(apis.websocket_origin(region))
    for wrong in ("http://a1b2c3.execute-api.us-east-1.amazonaws.com",  # not TLS
                  "https://a1b2c3.execute-api.us-east-1.amazonaws.com/",
                  "https://a1b2c3.execute-api.us-east-1.amazonaws.com/api",
                  "https://*.execute-api.us-east-1.amazonaws.com",
                  "https://a1b2c3.execute-api.us-east-1.amazonaws.com https://evil.example",
                  "https://a1b2c3.execute-api.us-east-1.amazonaws.com.evil.example",
                  "a1b2c3.execute-api.us-east-1.amazonaws.com",  # the old RestApiDomain
                  "wss://a1b2c3.execute-api.us-east-1.amazonaws.com", "https://evil.example"):
        assert not rest.fullmatch(wrong), wrong


def test_web_csp_is_as_strict_as_the_local_stacks_page(web: dict[str, Any]) -> None:
    """The same directives and sources as local_stack's page, except what only exists locally:
    the hash of its injected config script and its own ws:// origin. Its REST API is the page's
    own origin ('self'); deployed, it is the REST API's origin."""
    from local_stack.server import LocalWebClient, StackSettings

    settings = StackSettings(host="127.0.0.1", port=8000, workers=1, expiry_interval_s=60,
                             idle_timeout_s=600, max_connection_s=7200)
    header = LocalWebClient(settings)._page_headers["Content-Security-Policy"]
    local = {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}
    local["script-src"] = [s for s in local["script-src"] if not s.startswith("'sha256-")]
    assert local["connect-src"] == ["'self'", "ws://127.0.0.1:8000"]
    local["connect-src"] = ["'self'", "${RestApiOrigin}", "${WebSocketOrigin}"]
    assert _csp(web) == local


def test_web_pages_carry_the_other_security_headers(web: dict[str, Any]) -> None:
    config = web["Resources"]["SecurityHeadersPolicy"]["Properties"]
    headers = config["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert headers["ContentTypeOptions"]["Override"] is True
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "no-referrer"
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    distribution = web["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    default = distribution["DefaultCacheBehavior"]
    assert default["ResponseHeadersPolicyId"] == {"Ref": "SecurityHeadersPolicy"}
    assert default["ViewerProtocolPolicy"] == "redirect-to-https"
    assert default["CachePolicyId"] == CACHING_OPTIMIZED
    assert distribution["DefaultRootObject"] == "index.html"


def test_web_bucket_is_private_and_readable_only_by_its_distribution(
        web: dict[str, Any]) -> None:
    (name, bucket), = _resources(web, "AWS::S3::Bucket").items()
    props = bucket["Properties"]
    assert all(props["PublicAccessBlockConfiguration"][key] is True for key in (
        "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert "AccessControl" not in props and "WebsiteConfiguration" not in props

    (policy,) = _resources(web, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": name}
    allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
              if s["Effect"] == "Allow"]
    assert len(allows) == 1
    (allow,) = allows
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    source = allow["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    assert source.endswith(":distribution/${Distribution}")

    distribution = web["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    (origin,) = [o for o in distribution["Origins"] if "S3OriginConfig" in o]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["OriginAccessControl", "Id"]}


def _references(value: Any, name: str, where: str = "") -> list[str]:
    """Where in `value` the parameter or resource `name` is used (Ref, GetAtt or Sub)."""
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            if key == "Ref" and item == name:
                found.append(where)
            elif key == "Fn::GetAtt" and isinstance(item, list) and item[0] == name:
                found.append(where)
            elif key == "Fn::Sub" and re.search(r"\$\{" + re.escape(name) + r"[}.]",
                                                item if isinstance(item, str) else item[0]):
                found.append(where)
            found += _references(item, name, f"{where}/{key}")
        return found
    if isinstance(value, list):
        return [ref for index, item in enumerate(value)
                for ref in _references(item, name, f"{where}/{index}")]
    return []


def test_the_distribution_forwards_nothing_to_api_gateway(web: dict[str, Any]) -> None:
    """The page calls the APIs directly: through CloudFront, API Gateway's identity.sourceIp
    would be an edge address, and the per-address login limits and a code's network binding
    would count and bind CloudFront instead of the user. So the distribution serves the bucket
    and nothing else, and the API origins appear only in the page's connect-src."""
    distribution = web["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    (origin,) = distribution["Origins"]
    assert "S3OriginConfig" in origin and "CustomOriginConfig" not in origin
    assert origin["DomainName"] == {"Fn::GetAtt": ["WebBucket", "RegionalDomainName"]}
    assert "CacheBehaviors" not in distribution
    default = distribution["DefaultCacheBehavior"]
    assert default["TargetOriginId"] == origin["Id"]
    assert set(default["AllowedMethods"]) == {"GET", "HEAD"}  # nothing to POST an API call to
    assert "OriginRequestPolicyId" not in default
    assert "execute-api" not in str(distribution)

    csp_path = ("/Resources/SecurityHeadersPolicy/Properties/ResponseHeadersPolicyConfig"
                "/SecurityHeadersConfig/ContentSecurityPolicy/ContentSecurityPolicy")
    for parameter in ("RestApiOrigin", "WebSocketOrigin"):
        assert _references(web, parameter) == [csp_path], parameter


def test_the_proxy_pools_read_committed_connections_and_does_not_pin_on_that_set(stack):
    (target_group,) = _resources(stack, "AWS::RDS::DBProxyTargetGroup").values()

    pool = target_group["Properties"]["ConnectionPoolConfigurationInfo"]
    assert pool["InitQuery"] == "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
    assert pool["SessionPinningFilters"] == ["EXCLUDE_VARIABLE_SETS"]


@pytest.mark.parametrize(("stage", "size"), [("dev", "db.t4g.micro"), ("prod", "db.t4g.medium")])
def test_each_stage_gets_the_database_size_its_costs_are_computed_for(stack, stage, size):
    (database,) = _resources(stack, "AWS::RDS::DBInstance").values()
    condition, _, by_stage = database["Properties"]["DBInstanceClass"]["Fn::If"]

    assert condition == "HasInstanceClass"
    assert stack["Parameters"]["DatabaseInstanceClass"]["Default"] == ""
    mapping, _, key = by_stage["Fn::FindInMap"]
    assert stack["Mappings"][mapping][stage][key] == size
