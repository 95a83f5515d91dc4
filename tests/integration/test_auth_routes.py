"""The auth routes and `$connect` as API Gateway invokes them: real MariaDB, SMS through moto's
SNS, pushes to a recording management API on a local port."""

from __future__ import annotations

import json
import re

import pytest
from chalice.test import Client
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from app import app, ws_connect, ws_disconnect
from chalicelib import bootstrap

PHONE = "+14155550101"
REGION = "us-east-1"


@pytest.fixture
def client(app_env, monkeypatch, management_api):
    monkeypatch.setenv("SMS_MODE", "sns")
    monkeypatch.setenv("WS_PUBLIC_URL", "ws://127.0.0.1:9/ws")
    monkeypatch.setenv("WS_MANAGEMENT_ENDPOINT", management_api.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    bootstrap.reset()
    with mock_aws(), Client(app, stage_name="local") as test_client:
        yield test_client


def post(client, path: str, body: dict | None = None, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = client.http.post(path, headers=headers, body=json.dumps(body or {}))
    return response.status_code, json.loads(response.body) if response.body else None


def texted_code(phone: str) -> str:
    """Read the code out of what SNS "sent", as the person holding the phone would."""
    messages = sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages.values()
    text = [message for number, message in messages if number == phone][-1]
    return re.search(r"\b(\d{6})\b", text).group(1)


def login(client, phone: str = PHONE, device: str = "phone") -> dict:
    status, challenge = post(client, "/auth/otp", {"phone": phone})
    assert status == 202
    status, session = post(client, "/auth/verify", {
        "challenge_id": challenge["challenge_id"], "code": texted_code(phone),
        "device_name": device})
    assert status == 200, session
    return session


def connect_event(connection_id: str, query: dict | None) -> dict:
    return {
        "requestContext": {
            "routeKey": "$connect", "eventType": "CONNECT", "connectionId": connection_id,
            "domainName": "127.0.0.1", "stage": "api", "apiId": "local",
            "requestId": "req-" + connection_id, "connectedAt": 1, "requestTimeEpoch": 1,
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "queryStringParameters": query,
        "headers": {"Host": "127.0.0.1"},
        "isBase64Encoded": False,
    }


def connect(connection_id: str, ticket: str | None) -> int:
    query = {"ticket": ticket} if ticket is not None else None
    return ws_connect(connect_event(connection_id, query), None)["statusCode"]


def ticket_for(client, session: dict) -> str:
    status, reply = post(client, "/ws/ticket", token=session["access_token"])
    assert status == 200
    return reply["ticket"]


def connection_rows(mysql_db) -> list[str]:
    def select(txn):
        txn.execute("SELECT id FROM connections ORDER BY id")
        return [row["id"] for row in txn.fetchall()]

    return mysql_db.run_read("t", select)


def test_login_by_sms_then_ticket_then_socket(client, mysql_db):
    session = login(client)

    status, ticket = post(client, "/ws/ticket", token=session["access_token"])

    assert set(session) == {"access_token", "refresh_token", "expires_in", "user", "device_id"}
    assert session["user"]["phone"] == PHONE
    assert status == 200
    assert (ticket["url"], ticket["expires_in"]) == ("ws://127.0.0.1:9/ws", 60)
    assert connect("Abc123=", ticket["ticket"]) == 200
    assert connection_rows(mysql_db) == ["Abc123="]


def test_otp_replies_202_with_the_challenge_shape(client):
    status, reply = post(client, "/auth/otp", {"phone": "+1 415 555 0101"})

    assert status == 202
    assert set(reply) == {"challenge_id", "expires_in", "resend_after"}


@pytest.mark.parametrize("body", [{"phone": "not a phone"}, {}, {"phone": 4155550101}])
def test_bad_phones_are_400_with_an_error_body(client, body):
    status, reply = post(client, "/auth/otp", body)

    assert status == 400
    assert reply["error"]["code"] == "bad_request"


def test_a_body_that_is_not_json_is_400(client):
    response = client.http.post("/auth/otp", headers={"Content-Type": "application/json"},
                                body="{not json")

    assert response.status_code == 400
    assert json.loads(response.body)["error"]["code"] == "bad_request"


def test_a_wrong_code_is_401_with_attempts_left(client):
    _, challenge = post(client, "/auth/otp", {"phone": PHONE})
    wrong = "000000" if texted_code(PHONE) != "000000" else "111111"

    status, reply = post(client, "/auth/verify", {"challenge_id": challenge["challenge_id"],
                                                   "code": wrong, "device_name": "phone"})

    assert status == 401
    assert reply["error"] == {"code": "unauthorized", "message": "wrong code",
                              "attempts_left": 4}


def test_refresh_rotates_and_a_reused_token_revokes_the_device(client):
    session = login(client)

    status, rotated = post(client, "/auth/refresh", {"refresh_token": session["refresh_token"]})
    reused_status, _ = post(client, "/auth/refresh", {"refresh_token": session["refresh_token"]})
    ticket_status, _ = post(client, "/ws/ticket", token=rotated["access_token"])

    assert status == 200 and rotated["refresh_token"] != session["refresh_token"]
    assert reused_status == 401
    assert ticket_status == 401


def test_devices_are_listed_and_only_my_own_can_be_revoked(client):
    phone, laptop = login(client), login(client, device="laptop")
    bob = login(client, "+14155550102")

    listed = json.loads(client.http.get(
        "/devices", headers={"Authorization": f"Bearer {laptop['access_token']}"}).body)
    foreign = client.http.delete(f"/devices/{phone['device_id']}",
                                 headers={"Authorization": f"Bearer {bob['access_token']}"})
    mine = client.http.delete(f"/devices/{phone['device_id']}",
                              headers={"Authorization": f"Bearer {laptop['access_token']}"})

    assert [(d["name"], d["current"]) for d in listed["devices"]] == [
        ("phone", False), ("laptop", True)]
    assert foreign.status_code == 404
    assert mine.status_code == 204
    assert post(client, "/ws/ticket", token=phone["access_token"])[0] == 401


def test_logout_closes_this_devices_socket_and_leaves_the_other_connected(
    client, management_api, mysql_db
):
    phone, laptop = login(client), login(client, device="laptop")
    management_api.live.update({"phone-conn=", "laptop-conn="})
    assert connect("phone-conn=", ticket_for(client, phone)) == 200
    assert connect("laptop-conn=", ticket_for(client, laptop)) == 200

    status, _ = post(client, "/auth/logout", token=phone["access_token"])

    assert status == 204
    assert len(management_api.calls_to("phone-conn=", "DELETE")) == 1
    assert management_api.calls_to("laptop-conn=") == []
    assert management_api.live == {"laptop-conn="}
    assert connection_rows(mysql_db) == ["laptop-conn="]
    assert post(client, "/ws/ticket", token=phone["access_token"])[0] == 401
    assert post(client, "/ws/ticket", token=laptop["access_token"])[0] == 200


def test_disconnect_forgets_the_connection(client, mysql_db):
    session = login(client)
    connect("bye=", ticket_for(client, session))

    ws_disconnect({**connect_event("bye=", None), "requestContext": {
        **connect_event("bye=", None)["requestContext"], "routeKey": "$disconnect",
        "eventType": "DISCONNECT"}}, None)

    assert connection_rows(mysql_db) == []


# --- the handshake refuses what is not a fresh ticket of a live device ------------------


def test_a_reused_ticket_is_refused_and_stores_nothing(client, mysql_db):
    ticket = ticket_for(client, login(client))
    assert connect("first=", ticket) == 200

    assert connect("second=", ticket) == 401
    assert connection_rows(mysql_db) == ["first="]


@pytest.mark.parametrize(
    "make_ticket",
    [
        pytest.param(lambda session: None, id="no-ticket"),
        pytest.param(lambda session: "", id="empty"),
        pytest.param(lambda session: "forged.ticket.value", id="forged"),
        pytest.param(lambda session: session["access_token"], id="access-token-as-ticket"),
        pytest.param(lambda session: session["refresh_token"], id="refresh-token-as-ticket"),
    ],
)
def test_a_bad_ticket_is_refused_and_stores_nothing(client, mysql_db, make_ticket):
    session = login(client)

    assert connect("nope=", make_ticket(session)) == 401
    assert connection_rows(mysql_db) == []


def test_a_ticket_of_a_revoked_device_is_refused(client, mysql_db):
    session = login(client)
    ticket = ticket_for(client, session)
    post(client, "/auth/logout", token=session["access_token"])

    assert connect("late=", ticket) == 403
    assert connection_rows(mysql_db) == []


def test_a_ticket_cannot_authenticate_a_rest_call(client):
    ticket = ticket_for(client, login(client))

    assert post(client, "/ws/ticket", token=ticket)[0] == 401


def test_the_login_flow_logs_no_code_and_no_token(client, log_lines):
    session = login(client)
    ticket = ticket_for(client, session)
    connect("logged=", ticket)

    written = json.dumps(log_lines())
    assert '"route": "POST /auth/verify"' in written
    for secret in (texted_code(PHONE), session["access_token"], session["refresh_token"],
                   ticket):
        assert secret not in written
