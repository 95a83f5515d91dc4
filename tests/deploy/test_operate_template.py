"""`infra/operate.yaml`: the alarms say what docs/OPERATE.md says they say (thresholds, periods,
missing data), watch every function the app deploys and the metrics the code emits with the
dimensions it emits them with, and notify one topic; the dashboard is valid JSON for each stage
and names only metrics that exist. (cfn-lint runs on it in test_infra_templates.py.)"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit
from cfnlint.decode.cfn_yaml import load

from infra.deploy import operate_stack_name

REPO = Path(__file__).resolve().parents[2]
OPERATE = REPO / "infra" / "operate.yaml"
CHALICELIB = REPO / "chalicelib"
CONFIG = json.loads((REPO / ".chalice" / "config.json").read_text())
# The AWS metrics used, from AWS's lists of what each service publishes:
# https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html and
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html
AWS_METRICS = {
    "AWS/Lambda": {"Invocations", "Errors", "Throttles", "Duration"},
    "AWS/SQS": {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"},
}
QUEUES = {"ephemera-${Stage}-fanout", "ephemera-${Stage}-fanout-dlq"}
# Invoked only by `make deploy`, which stops on its failure: no alarm, no dashboard line.
UNWATCHED = {"migrate"}
# Custom metrics' namespace in the template: one per stage, so that two stages in one account
# never satisfy (or trip) each other's alarms.
NAMESPACE = "Ephemera/${Stage}"


def stage_namespace(stage: str) -> str:
    """The namespace a stage's functions emit in (.chalice/config.json)."""
    return CONFIG["stages"][stage]["environment_variables"]["POWERTOOLS_METRICS_NAMESPACE"]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_stage_emits_in_the_namespace_its_alarms_read(stage):
    assert stage_namespace(stage) == NAMESPACE.replace("${Stage}", stage)


@pytest.fixture(scope="module")
def operate() -> dict[str, Any]:
    return load(str(OPERATE))


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in template["Resources"].items()
            if r["Type"] == "AWS::CloudWatch::Alarm"}


def app_functions() -> dict[str, str]:
    """Chalice's name of each function the app deploys -> its Lambda name, as a !Sub."""
    from app import app

    names = set()
    if app.routes:
        names.add("api_handler")
    if app.websocket_handlers:
        names |= {"websocket_connect", "websocket_message", "websocket_disconnect"}
    names |= {source.name for source in app.event_sources}
    names |= {function.name for function in app.pure_lambda_functions}
    return {name: "ephemera-${Stage}" if name == "api_handler" else f"ephemera-${{Stage}}-{name}"
            for name in names}


def watched_functions() -> dict[str, str]:
    return {name: lam for name, lam in app_functions().items() if name not in UNWATCHED}


def sub(value: Any) -> str:
    """The text of a !Sub (or a plain string)."""
    return value["Fn::Sub"] if isinstance(value, dict) else value


def emitted_metric_names() -> set[str]:
    """Every CamelCase string literal in a chalicelib module that adds metrics: the names the
    code can emit (`add_metric(name="Sends")`, or names listed for a loop of add_metric)."""
    names: set[str] = set()
    for path in CHALICELIB.rglob("*.py"):
        source = path.read_text()
        if "add_metric" not in source:
            continue
        names |= {node.value for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and re.fullmatch(r"[A-Z][A-Za-z]+", node.value)}
    return names


def emf_dimensions() -> list[dict[str, str]]:
    """The dimensions powertools gives every custom metric, read from the EMF document the
    app's own Metrics object writes."""
    from chalicelib.observability import metrics

    metrics.clear_metrics()
    metrics.add_metric(name="DimensionProbe", unit=MetricUnit.Count, value=1)
    document = metrics.serialize_metric_set()
    metrics.clear_metrics()
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    (names,) = directive["Dimensions"]
    return [{"Name": name, "Value": document[name]} for name in names]


def metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads: its own, or each of its metric math inputs."""
    if "MetricName" in alarm:
        return [{"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"],
                 "Dimensions": alarm["Dimensions"], "Period": alarm["Period"],
                 "Stat": alarm["Statistic"]}]
    return [{**query["MetricStat"]["Metric"], "Period": query["MetricStat"]["Period"],
             "Stat": query["MetricStat"]["Stat"]}
            for query in alarm["Metrics"] if "MetricStat" in query]


def function_of(metric: dict[str, Any]) -> str:
    (dimension,) = metric["Dimensions"]
    assert dimension["Name"] == "FunctionName"
    return sub(dimension["Value"])


# ---------------------------------------------------------------- expiry lag


def test_expiry_lag_alarms_over_five_minutes_for_two_one_minute_periods(operate):
    alarm = alarms(operate)["ExpiryLagAlarm"]

    assert (sub(alarm["Namespace"]), alarm["MetricName"]) == (NAMESPACE, "ExpiryLagSeconds")
    assert alarm["Statistic"] == "Maximum"
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (60, 2, 2)
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 300)


def test_expiry_lag_alarms_when_the_cleanup_stops_reporting(operate):
    assert alarms(operate)["ExpiryLagAlarm"]["TreatMissingData"] == "breaching"


def test_custom_metrics_are_read_where_and_as_the_app_emits_them(operate):
    """The deployed namespace (config.json) and the dimensions powertools writes: an alarm
    on any other dimension set would watch a metric nobody emits, and with missing data
    breaching, the expiry alarm would fire forever."""
    for name, alarm in alarms(operate).items():
        for metric in metric_stats(alarm):
            if not sub(metric["Namespace"]).startswith("AWS/"):
                assert sub(metric["Namespace"]) == NAMESPACE, name
                assert metric["Dimensions"] == emf_dimensions(), name
                assert metric["MetricName"] in emitted_metric_names(), name


# ---------------------------------------------------------------- errors and throttles


def test_every_function_the_app_deploys_but_migrate_has_an_error_rate_alarm(operate):
    watched = {}
    for name, alarm in alarms(operate).items():
        inputs = {m["MetricName"]: m for m in metric_stats(alarm) if m["Namespace"] == "AWS/Lambda"}
        if "Errors" in inputs:
            assert function_of(inputs["Errors"]) == function_of(inputs["Invocations"]), name
            watched[function_of(inputs["Errors"])] = alarm

    assert set(watched) == set(watched_functions().values())
    for lambda_name, alarm in watched.items():
        (rate,) = [q for q in alarm["Metrics"] if q.get("ReturnData")]
        assert rate["Expression"] == "IF(errors >= 5, 100 * errors / invocations, 0)"
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 1)
        assert alarm["TreatMissingData"] == "notBreaching"
        assert {m["Period"] for m in metric_stats(alarm)} == {300}
        assert {m["Stat"] for m in metric_stats(alarm)} == {"Sum"}
        chalice_name = lambda_name.removeprefix("ephemera-${Stage}").lstrip("-") or "api_handler"
        assert sub(alarm["AlarmName"]) == f"ephemera-${{Stage}}-errors-{chalice_name}"


def test_answers_of_500_are_alarmed_on_as_a_rate_too(operate):
    alarm = alarms(operate)["ServerErrorsAlarm"]

    inputs = {m["MetricName"] for m in metric_stats(alarm)}
    assert inputs == {"ServerErrors", "Invocations"}
    (rate,) = [q for q in alarm["Metrics"] if q.get("ReturnData")]
    assert rate["Expression"] == "IF(errors >= 5, 100 * errors / invocations, 0)"
    assert alarm["Threshold"] == 1


def test_a_throttle_of_any_watched_function_fires_the_throttle_alarm(operate):
    alarm = alarms(operate)["ThrottlesAlarm"]

    inputs = metric_stats(alarm)
    assert {m["MetricName"] for m in inputs} == {"Throttles"}
    assert {function_of(m) for m in inputs} == set(watched_functions().values())
    (total,) = [q for q in alarm["Metrics"] if q.get("ReturnData")]
    assert total["Expression"] == "SUM(METRICS())"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert len(alarm["Metrics"]) <= 10  # CloudWatch's limit of metrics in one alarm


# ---------------------------------------------------------------- the fan-out queue


def test_one_message_in_the_dead_letter_queue_fires_its_alarm(operate):
    alarm = alarms(operate)["FanoutDeadLetterAlarm"]

    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName",
                                    "Value": {"Fn::Sub": "ephemera-${Stage}-fanout-dlq"}}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert (alarm["Period"], alarm["EvaluationPeriods"]) == (60, 1)


def test_fanouts_waiting_over_a_minute_for_two_minutes_fire_the_age_alarm(operate):
    alarm = alarms(operate)["FanoutAgeAlarm"]

    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert alarm["Dimensions"] == [{"Name": "QueueName",
                                    "Value": {"Fn::Sub": "ephemera-${Stage}-fanout"}}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 60)
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (60, 2, 2)


def test_the_queue_names_are_the_ones_the_app_subscribes_to_and_the_stack_creates():
    from chalicelib.services.fanout import queue_name

    stack = load(str(REPO / "infra" / "stack.yaml"))
    assert queue_name("dev") == "ephemera-dev-fanout"
    assert {sub(stack["Resources"][name]["Properties"]["QueueName"])
            for name in ("FanoutQueue", "FanoutDeadLetterQueue")} == QUEUES


# ---------------------------------------------------------------- notifications


def test_every_alarm_tells_the_topic_when_it_fires_and_when_it_clears(operate):
    for name, alarm in alarms(operate).items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert "docs/OPERATE.md" in alarm["AlarmDescription"], name


def test_the_alarm_email_is_subscribed_only_when_one_is_given(operate):
    subscription = operate["Resources"]["AlarmEmailSubscription"]

    assert subscription["Condition"] == "HasAlarmEmail"
    assert operate["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert operate["Parameters"]["AlarmEmail"]["Default"] == ""
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}


def test_operate_md_documents_exactly_the_metrics_the_code_emits():
    """Its metrics table, one row per metric (first column), against every name the code
    passes to add_metric (found by `emitted_metric_names`, which may hold other CamelCase
    strings of those modules: each documented name must be among them, and each add_metric
    call's own name documented)."""
    text = (REPO / "docs" / "OPERATE.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z]+)` \| (?:Count|Seconds|Milliseconds) \|", text,
                                re.MULTILINE))
    called = set()
    for path in CHALICELIB.rglob("*.py"):
        source = path.read_text()
        called |= set(re.findall(r'add_metric\(name="([A-Za-z]+)"', source))
        called |= set(re.findall(r'\("([A-Za-z]+)", [^)]*MetricUnit\.', source))

    assert documented <= emitted_metric_names()
    assert called == documented


def test_every_runbook_the_alarms_name_is_a_section_of_operate_md(operate):
    sections = set(re.findall(r"^#+ (.+)$", (REPO / "docs" / "OPERATE.md").read_text(),
                              re.MULTILINE))
    for name, alarm in alarms(operate).items():
        (runbook,) = re.findall(r'"([^"]+)"', alarm["AlarmDescription"])
        assert runbook in sections, (name, runbook)


# ---------------------------------------------------------------- the dashboard


def dashboard(operate: dict[str, Any], stage: str) -> dict[str, Any]:
    """The dashboard's body as CloudFormation would render it for `stage`."""
    text = sub(operate["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    for name, value in {"Stage": stage, "AWS::Region": "eu-west-1",
                        "AWS::AccountId": "111122223333", "AWS::Partition": "aws"}.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text, "a variable the test does not know"
    return json.loads(text)


def widget_metrics(body: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of every metric line of every widget."""
    found = []
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []):
            namespace, name, *rest = line
            pairs = [item for item in rest if isinstance(item, str)]
            found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_dashboard_body_is_valid_json_for_each_stage(operate, stage):
    body = dashboard(operate, stage)

    assert body["widgets"]
    for widget in body["widgets"]:
        x, width = widget["x"], widget["width"]
        assert 0 <= x and x + width <= 24, widget["properties"]["title"]  # the grid is 24 wide


def test_the_dashboard_names_only_metrics_that_exist(operate):
    body = dashboard(operate, "dev")
    lambda_names = {name.replace("${Stage}", "dev") for name in watched_functions().values()}
    queues = {name.replace("${Stage}", "dev") for name in QUEUES}
    custom_dimensions = {d["Name"]: d["Value"] for d in emf_dimensions()}
    namespace = stage_namespace("dev")

    for space, name, dimensions in widget_metrics(body):
        if space == namespace:
            assert name in emitted_metric_names(), name
            assert dimensions == custom_dimensions, name
        elif space == "AWS/Lambda":
            assert name in AWS_METRICS[space], name
            assert set(dimensions) == {"FunctionName"}
            assert dimensions["FunctionName"] in lambda_names, dimensions
        else:
            assert space == "AWS/SQS", space
            assert name in AWS_METRICS[space], name
            assert dimensions["QueueName"] in queues, dimensions


def test_the_dashboard_shows_what_an_operator_needs(operate):
    shown = {(space, name) for space, name, _ in widget_metrics(dashboard(operate, "dev"))}

    assert {(stage_namespace("dev"), name) for name in (
        "Sends", "Pushes", "PushesGone", "RateLimitDenials", "ExpiryLagSeconds")} <= shown
    assert {("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
            ("AWS/SQS", "ApproximateAgeOfOldestMessage")} <= shown
    assert {("AWS/Lambda", name) for name in ("Errors", "Throttles", "Duration")} <= shown


def test_every_watched_function_has_a_line_in_each_lambda_widget(operate):
    body = dashboard(operate, "prod")
    lambda_names = {name.replace("${Stage}", "prod") for name in watched_functions().values()}

    for metric in ("Errors", "Throttles", "Duration"):
        shown = {dims["FunctionName"] for space, name, dims in widget_metrics(body)
                 if (space, name) == ("AWS/Lambda", metric)}
        assert shown == lambda_names, metric


def test_the_dashboards_alarm_widget_lists_every_alarm_of_the_stack(operate):
    body = dashboard(operate, "prod")
    (widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    names = {sub(alarm["AlarmName"]).replace("${Stage}", "prod")
             for alarm in alarms(operate).values()}

    prefix = "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:"
    assert {arn.removeprefix(prefix) for arn in widget["properties"]["alarms"]} == names
    assert len(names) == len(alarms(operate)), "alarm names are unique"


def test_the_stack_is_named_for_its_stage():
    assert operate_stack_name("prod") == "ephemera-prod-operate"
