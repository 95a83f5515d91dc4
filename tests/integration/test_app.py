"""The Chalice app end to end through Chalice's own test client: routes, schedule, logs."""

from __future__ import annotations

import json

from chalicelib import bootstrap
from chalicelib.storage.migrate import latest_version
from tests.integration.test_storage_contract import (
    NOW,
    make_conversation,
    make_user,
    send,
)


def test_health_is_ok_once_the_schema_is_at_the_latest_version(client):
    response = client.http.get("/health")

    assert response.status_code == 200
    assert json.loads(response.body) == {"ok": True, "schema_version": latest_version()}


def test_health_is_503_on_a_database_without_schema(
    client, monkeypatch, mysql_server, empty_mysql_database
):
    monkeypatch.setenv("DATABASE_URL", mysql_server.url(empty_mysql_database))
    bootstrap.reset()

    response = client.http.get("/health")

    assert response.status_code == 503
    assert json.loads(response.body) == {"ok": False, "schema_version": None}


def test_each_invocation_logs_one_line_with_route_request_id_and_duration(client, log_lines):
    client.http.get("/health", headers={"Authorization": "Bearer eyJ-not-for-logs"})

    invocations = [line for line in log_lines() if line["message"] == "invocation"]
    assert len(invocations) == 1
    (line,) = invocations
    assert line["route"] == "GET /health"
    assert line["request_id"]
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)


def test_no_log_line_carries_a_header_token_or_body(client, log_lines, mysql_db):
    alice = make_user(mysql_db, "+14155550101")
    chat = make_conversation(mysql_db, alice)
    send(mysql_db, chat, alice, expires_at=NOW, body="the body must never be logged")

    client.http.get("/health", headers={"Authorization": "Bearer eyJ-not-for-logs"})
    client.lambda_.invoke("scheduled_cleanup", client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))

    written = json.dumps(log_lines())
    assert "eyJ-not-for-logs" not in written
    assert "the body must never be logged" not in written


def test_each_invocation_flushes_its_metrics(client, capsys):
    client.http.get("/health")

    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines()
           if '"_aws"' in line]
    assert emf, "no metrics were flushed"
    names = {metric["Name"] for doc in emf
             for directive in doc["_aws"]["CloudWatchMetrics"] for metric in directive["Metrics"]}
    assert {"Invocations", "Latency"} <= names


def test_the_scheduled_cleanup_deletes_expired_messages_and_keeps_live_ones(client, mysql_db,
                                                                           mysql_server,
                                                                           mysql_database):
    alice = make_user(mysql_db, "+14155550101")
    chat = make_conversation(mysql_db, alice)
    send(mysql_db, chat, alice, expires_at=NOW)            # long gone by the system clock
    send(mysql_db, chat, alice, expires_at=NOW + 10**12)   # decades away

    result = client.lambda_.invoke("scheduled_cleanup", client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))

    assert {k: result.payload[k] for k in ("deleted", "batches", "finished", "backlog")} == {
        "deleted": 1, "batches": 1, "finished": True, "backlog": 0}
    with mysql_server.connect(mysql_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT seq FROM messages")
        assert [row["seq"] for row in cur.fetchall()] == [2]


def test_replies_and_errors_allow_any_origin_because_the_api_takes_no_cookies(client):
    """The deployed web client calls the API from its CloudFront origin (docs/DEPLOY.md)."""
    ok = client.http.get("/health")
    refused = client.http.get("/conversations", headers={"Authorization": "Bearer nope"})

    assert refused.status_code == 401
    for response in (ok, refused):
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
        assert response.headers["Access-Control-Expose-Headers"] == "Retry-After"
