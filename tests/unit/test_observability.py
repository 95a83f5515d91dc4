"""Log lines are structured, tagged per invocation, and never carry secrets or bodies."""

from __future__ import annotations

import json

from chalicelib.observability import (
    REDACTED,
    describe_event,
    log_invocation,
    logger,
    redact,
    set_user,
    tag,
)


def test_sensitive_keys_are_redacted_at_any_depth():
    record = {
        "message": "sent",
        "body": "hello there",
        "frame": {"action": "send", "Body": "hi", "ticket": "t.k.n"},
        "items": [{"code": "123456"}, {"seq": 4}],
        "seq": 4,
    }

    assert redact(record) == {
        "message": "sent",
        "body": REDACTED,
        "frame": {"action": "send", "Body": REDACTED, "ticket": REDACTED},
        "items": [{"code": REDACTED}, {"seq": 4}],
        "seq": 4,
    }


def test_the_logger_writes_no_secret_even_when_handed_one(log_lines):
    logger.info("verify", extra={
        "otp": "424242", "refresh_token": "rt-abcdef", "access_token": "at-ghijkl",
        "authorization": "Bearer zzz-top-secret", "password": "hunter2", "seq": 9,
    })

    (line,) = log_lines()
    for secret in ("424242", "rt-abcdef", "at-ghijkl", "zzz-top-secret", "hunter2"):
        assert secret not in json.dumps(line)
    assert line["seq"] == 9
    assert line["otp"] == REDACTED


def test_set_user_tags_the_following_lines(log_lines):
    set_user("01USER")
    logger.info("did a thing")
    logger.clear_state()
    logger.info("next invocation")

    first, second = log_lines()
    assert first["user_id"] == "01USER"
    assert "user_id" not in second


def test_each_invocation_writes_one_record_of_its_metrics_and_its_tags(log_lines):
    def tagged(event: object) -> dict:
        set_user("01USER")
        tag(action="send", token="t0p-s3cret")
        return {"statusCode": 201}

    log_invocation(None, tagged)
    log_invocation(None, lambda event: None)

    first, second = log_lines()
    assert (first["message"], first["level"], first["route"]) == ("invocation", "INFO", "unknown")
    assert (first["user_id"], first["action"], first["status"]) == ("01USER", "send", 201)
    assert first["token"] == REDACTED
    assert first["Invocations"] == [1.0]
    (directive,) = first["_aws"]["CloudWatchMetrics"]
    assert {"Invocations", "Latency"} <= {metric["Name"] for metric in directive["Metrics"]}
    assert "user_id" not in second and "action" not in second
    assert second["status"] is None


def test_websocket_events_are_described_by_route_key_and_connection():
    from chalice.app import WebsocketEvent

    event = WebsocketEvent({
        "requestContext": {"routeKey": "$default", "connectionId": "L0SM9cOFvHcCIhw=",
                           "domainName": "abc.execute-api.eu-west-1.amazonaws.com",
                           "stage": "api", "requestId": "req-1", "apiId": "abc"},
        "body": '{"action": "send", "body": "secret words"}',
    }, None)

    assert describe_event(event) == {
        "request_id": "req-1", "route": "$default", "connection_id": "L0SM9cOFvHcCIhw=",
    }


def test_a_message_written_as_json_text_is_redacted_too(log_lines):
    logger.info(json.dumps({"action": "send", "body": "words never logged"}))

    (line,) = log_lines()
    assert "words never logged" not in json.dumps(line)
    assert line["message"] == {"action": "send", "body": REDACTED}
