"""The real handlers, fed the events AWS documents (`tests/events/`), through Chalice's test
client, against the run's MariaDB and a recording management API.

How the handlers are invoked: `Client(app, stage_name="local").lambda_.invoke(name, event)`.
Chalice's test client can invoke the WebSocket handlers this way: `invoke` calls
`app.handler_map[name](event, LambdaContext(...))`, and for `@app.on_ws_*` handlers that entry is
Chalice's `WebsocketEventSourceHandler`, the same object the deployed Lambda calls. It needs
only a region (set by conftest) to configure Chalice's own push client, which the app never
uses (`app.websocket_api.session` can stay unset: pushes go through our adapter to
`WS_MANAGEMENT_ENDPOINT`). What the test client does not do for WebSockets: it has no event
generator for them (`client.events` makes SNS, S3, SQS, CloudWatch and Kinesis events), no
WebSocket counterpart of `client.http`, and it knows the handlers by their Python names
(`ws_connect`, `ws_message`, `ws_disconnect`), not by the deployed functions' config keys
(`websocket_connect`, ...): `invoke("websocket_connect", ...)` raises `FunctionNotFoundError`,
and per-function settings under `lambda_functions.websocket_*` are not applied by `invoke`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client, FunctionNotFoundError

from app import app
from chalicelib import bootstrap
from chalicelib.ids import new_id
from chalicelib.storage import outbox
from tests.integration.test_conversation_routes import Api

EVENTS = Path(__file__).parents[1] / "events"
PLACEHOLDER = "REPLACED_BY_TEST"
ALICE, BOB = "+14155550101", "+14155550102"
# Connection ids in the form API Gateway gives them (base64-like, often ending in "=").
ALICE_CONN = "R1kmxc2VNjMCFIA="
BOB_PHONE_CONN, BOB_LAPTOP_CONN = "R1lA7dXhtjMCJkQ=", "R1lBq3mJPHcCFzg="


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))


def filled(event: dict[str, Any]) -> dict[str, Any]:
    """The event, checked to carry no placeholder the test forgot to replace."""
    assert PLACEHOLDER not in json.dumps(event), event
    return event


def connect_event(connection_id: str, ticket: str | None) -> dict[str, Any]:
    event = sample("ws_connect")
    event["requestContext"]["connectionId"] = connection_id
    if ticket is None:  # a socket opened without `?ticket=`: API Gateway sends no query
        del event["queryStringParameters"], event["multiValueQueryStringParameters"]
    else:
        event["queryStringParameters"]["ticket"] = ticket
        event["multiValueQueryStringParameters"]["ticket"] = [ticket]
    return filled(event)


def message_event(connection_id: str, body: str) -> dict[str, Any]:
    event = sample("ws_message")
    event["requestContext"]["connectionId"] = connection_id
    event["body"] = body
    return filled(event)


def disconnect_event(connection_id: str) -> dict[str, Any]:
    event = sample("ws_disconnect")
    event["requestContext"]["connectionId"] = connection_id
    return filled(event)


class Stack(Api):
    """The app as clients and API Gateway see it: REST through `client.http` (`call`, to get
    sessions, tickets and a conversation as a client does), WebSocket and schedule events
    through `client.lambda_.invoke`, pushes recorded by the management API."""

    def __init__(self, client: Client, db, management_api) -> None:
        super().__init__(client, db)
        self.management_api = management_api

    def login(self, phone: str, device: str = "phone") -> dict[str, Any]:
        _, challenge = self.call("POST", "/auth/otp", {"phone": phone})
        code = self.db.run_read("t", outbox.sms_for_phone, phone)[0].code
        status, session = self.call("POST", "/auth/verify", {
            "challenge_id": challenge["challenge_id"], "code": code, "device_name": device})
        assert status == 200, session
        return session

    def ticket(self, session: dict[str, Any]) -> str:
        status, reply = self.call("POST", "/ws/ticket", token=session["access_token"])
        assert status == 200, reply
        return reply["ticket"]

    def direct_chat(self, owner: dict[str, Any], other: dict[str, Any], other_phone: str) -> str:
        """A 1:1 the other side has accepted, so each may see the other's presence."""
        status, chat = self.call("POST", "/conversations", {"members": [other_phone]},
                                 owner["access_token"])
        assert status == 201, chat
        status, accepted = self.call("POST", f"/conversations/{chat['id']}/accept",
                                     token=other["access_token"])
        assert status == 200, accepted
        return chat["id"]

    # --- the Lambda events ------------------------------------------------------------------

    def connect(self, connection_id: str, ticket: str | None) -> dict[str, Any]:
        self.management_api.live.add(connection_id)  # API Gateway holds the socket from now
        return self.client.lambda_.invoke("ws_connect",
                                          connect_event(connection_id, ticket)).payload

    def message(self, connection_id: str, body: str) -> dict[str, Any]:
        return self.client.lambda_.invoke("ws_message",
                                          message_event(connection_id, body)).payload

    def frame(self, connection_id: str, **frame: Any) -> dict[str, Any]:
        return self.message(connection_id, json.dumps(frame, ensure_ascii=False))

    def disconnect(self, connection_id: str) -> dict[str, Any]:
        self.management_api.live.discard(connection_id)  # the socket is already closed
        return self.client.lambda_.invoke("ws_disconnect",
                                          disconnect_event(connection_id)).payload

    # --- what happened ------------------------------------------------------------------------

    def frames(self, connection_id: str, frame_type: str | None = None) -> list[dict[str, Any]]:
        pushed = [json.loads(call.body)
                  for call in self.management_api.calls_to(connection_id, "POST")]
        return [f for f in pushed if frame_type is None or f["type"] == frame_type]

    def rows(self, table: str, order_by: str = "id") -> list[dict[str, Any]]:
        def select(txn):
            txn.execute(f"SELECT * FROM {table} ORDER BY {order_by}")
            return txn.fetchall()

        return self.db.run_read("t", select)


@pytest.fixture
def client(app_env, monkeypatch, management_api):
    monkeypatch.setenv("WS_PUBLIC_URL", "wss://abcdef123.execute-api.us-east-1.amazonaws.com/api")
    monkeypatch.setenv("WS_MANAGEMENT_ENDPOINT", management_api.endpoint)
    bootstrap.reset()
    with Client(app, stage_name="local") as test_client:
        yield test_client


@pytest.fixture
def stack(client, mysql_db, management_api) -> Stack:
    return Stack(client, mysql_db, management_api)


@pytest.fixture
def pair(stack):
    """Alice and Bob, logged in, sharing an accepted 1:1; nobody connected yet."""
    alice, bob = stack.login(ALICE), stack.login(BOB)
    return alice, bob, stack.direct_chat(alice, bob, BOB)


def test_the_samples_are_the_documented_shapes():
    """The samples stay what API Gateway and EventBridge send (a guard against someone
    "simplifying" them back into what Chalice's helpers build)."""
    connect, message = sample("ws_connect"), sample("ws_message")
    disconnect, scheduled = sample("ws_disconnect"), sample("scheduled")
    contexts = [connect["requestContext"], message["requestContext"],
                disconnect["requestContext"]]

    assert [(c["routeKey"], c["eventType"]) for c in contexts] == [
        ("$connect", "CONNECT"), ("$default", "MESSAGE"), ("$disconnect", "DISCONNECT")]
    for context in contexts:
        assert context["stage"] == "api" and context["messageDirection"] == "IN"
        assert isinstance(context["connectedAt"], int)
        assert isinstance(context["requestTimeEpoch"], int)
        assert {"sourceIp", "userAgent"} <= set(context["identity"])
        assert {"apiId", "domainName", "requestId", "extendedRequestId",
                "connectionId"} <= set(context)
    assert {"Host", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
            "X-Forwarded-For"} <= set(connect["headers"]) == set(connect["multiValueHeaders"])
    assert "body" not in connect and "headers" not in message
    assert isinstance(message["requestContext"]["messageId"], str)
    assert isinstance(message["body"], str) and message["isBase64Encoded"] is False
    assert isinstance(disconnect["requestContext"]["disconnectStatusCode"], int)
    assert scheduled["detail-type"] == "Scheduled Event"
    assert scheduled["source"] == "aws.events" and scheduled["detail"] == {}
    assert scheduled["resources"][0].startswith("arn:aws:events:")


def test_the_test_client_knows_websocket_handlers_by_their_python_names(client):
    with pytest.raises(FunctionNotFoundError):
        client.lambda_.invoke("websocket_connect", connect_event(ALICE_CONN, None))
    assert {"ws_connect", "ws_message", "ws_disconnect", "scheduled_cleanup"} <= set(
        app.handler_map)


# --- $connect ------------------------------------------------------------------------------


def test_connect_with_a_fresh_ticket_opens_the_socket_and_announces_presence(stack, pair):
    alice, bob, _ = pair

    alice_reply = stack.connect(ALICE_CONN, stack.ticket(alice))
    bob_reply = stack.connect(BOB_PHONE_CONN, stack.ticket(bob))

    assert alice_reply["statusCode"] == 200 and bob_reply["statusCode"] == 200
    assert {(row["id"], row["user_id"], row["device_id"])
            for row in stack.rows("connections")} == {
        (ALICE_CONN, alice["user"]["id"], alice["device_id"]),
        (BOB_PHONE_CONN, bob["user"]["id"], bob["device_id"])}
    presence = stack.frames(ALICE_CONN, "presence")
    assert [(f["user_id"], f["online"]) for f in presence] == [(bob["user"]["id"], True)]
    # Nothing is pushed to a socket from inside its own $connect (it is not open yet).
    assert stack.frames(BOB_PHONE_CONN) == []


def test_a_reused_ticket_is_refused_and_stores_nothing(stack, pair):
    alice, _, _ = pair
    ticket = stack.ticket(alice)
    assert stack.connect(ALICE_CONN, ticket)["statusCode"] == 200

    again = stack.connect(BOB_LAPTOP_CONN, ticket)

    assert again["statusCode"] == 401
    assert [row["id"] for row in stack.rows("connections")] == [ALICE_CONN]


@pytest.mark.parametrize("query", [
    pytest.param(None, id="no-query"),
    pytest.param({"queryStringParameters": None, "multiValueQueryStringParameters": None},
                 id="null-query"),
    pytest.param({"queryStringParameters": {"ticket": ""},
                  "multiValueQueryStringParameters": {"ticket": [""]}}, id="empty-ticket"),
    pytest.param({"queryStringParameters": {"other": "x"},
                  "multiValueQueryStringParameters": {"other": ["x"]}}, id="other-param"),
])
def test_connect_without_a_ticket_is_refused_and_stores_nothing(stack, pair, query):
    event = connect_event(ALICE_CONN, None)
    event.update(query or {})

    reply = stack.client.lambda_.invoke("ws_connect", event).payload

    assert reply["statusCode"] == 401
    assert stack.rows("connections") == []


# --- $default ------------------------------------------------------------------------------


def test_a_send_frame_is_stored_once_and_pushed_as_sent_and_message(stack, pair):
    alice, bob, chat = pair
    stack.connect(ALICE_CONN, stack.ticket(alice))
    stack.connect(BOB_PHONE_CONN, stack.ticket(bob))
    client_msg_id = new_id()

    reply = stack.frame(ALICE_CONN, action="send", req="r1", conversation_id=chat,
                        client_msg_id=client_msg_id, body="héllo 👋")

    assert reply == {"statusCode": 200}  # the return value never reaches the client
    (stored,) = stack.rows("messages")
    assert (stored["conversation_id"], stored["seq"], stored["sender_id"],
            stored["sender_device_id"], stored["body"]) == (
        chat, 1, alice["user"]["id"], alice["device_id"], "héllo 👋")
    (sent,) = stack.frames(ALICE_CONN, "sent")
    assert (sent["req"], sent["conversation_id"], sent["client_msg_id"], sent["message_id"],
            sent["seq"], sent["duplicate"]) == ("r1", chat, client_msg_id, stored["id"], 1,
                                                False)
    (message,) = stack.frames(BOB_PHONE_CONN, "message")
    assert (message["message_id"], message["seq"], message["sender_id"], message["body"]) == (
        stored["id"], 1, alice["user"]["id"], "héllo 👋")
    assert stack.frames(ALICE_CONN, "message") == []
    assert stack.frames(BOB_PHONE_CONN, "sent") == []


@pytest.mark.parametrize("change", [
    pytest.param(lambda event: event.pop("body"), id="no-body-key"),
    pytest.param(lambda event: event.update(body=None), id="null-body"),
    pytest.param(lambda event: event.update(body=""), id="empty-body"),
    pytest.param(lambda event: event.update(body="None"), id="the-string-None"),
])
def test_a_frame_without_a_body_gets_bad_request_and_changes_nothing(stack, pair, change):
    alice, _, _ = pair
    stack.connect(ALICE_CONN, stack.ticket(alice))
    event = message_event(ALICE_CONN, "{}")
    change(event)

    reply = stack.client.lambda_.invoke("ws_message", event).payload

    assert reply == {"statusCode": 200}
    assert [(f["type"], f["code"]) for f in stack.frames(ALICE_CONN)] == [
        ("error", "bad_request")]
    assert stack.rows("messages") == []
    assert [row["id"] for row in stack.rows("connections")] == [ALICE_CONN]  # still open


def test_each_websocket_invocation_logs_the_gateway_request_id_and_route_and_no_ticket(
    stack, pair, log_lines
):
    alice, _, _ = pair
    ticket = stack.ticket(alice)
    stack.connect(ALICE_CONN, ticket)
    event = message_event(ALICE_CONN, json.dumps({"action": "ping", "req": 7}))

    stack.client.lambda_.invoke("ws_message", event)

    invocations = {line["route"]: line for line in log_lines()
                   if line["message"] == "invocation" and line.get("route", "").startswith("$")}
    assert set(invocations) == {"$connect", "$default"}
    assert invocations["$connect"]["request_id"] == sample("ws_connect")["requestContext"][
        "requestId"]
    assert invocations["$connect"]["status"] == 200
    assert invocations["$default"]["request_id"] == event["requestContext"]["requestId"]
    assert invocations["$default"]["connection_id"] == ALICE_CONN
    assert ticket not in json.dumps(log_lines())
    assert [(f["type"], f["req"]) for f in stack.frames(ALICE_CONN)] == [("pong", 7)]


# --- $disconnect ---------------------------------------------------------------------------


def test_disconnect_forgets_the_connection_and_presence_goes_offline_with_the_last(stack, pair):
    alice, bob, _ = pair
    bob_laptop = stack.login(BOB, device="laptop")
    stack.connect(ALICE_CONN, stack.ticket(alice))
    stack.connect(BOB_PHONE_CONN, stack.ticket(bob))
    stack.connect(BOB_LAPTOP_CONN, stack.ticket(bob_laptop))

    first = stack.disconnect(BOB_PHONE_CONN)
    presence_after_first = copy.deepcopy(stack.frames(ALICE_CONN, "presence"))
    rows_after_first = {row["id"] for row in stack.rows("connections")}
    last = stack.disconnect(BOB_LAPTOP_CONN)

    assert first == last == {"statusCode": 200}
    assert rows_after_first == {ALICE_CONN, BOB_LAPTOP_CONN}
    assert [(f["user_id"], f["online"]) for f in presence_after_first] == [
        (bob["user"]["id"], True)]
    assert [row["id"] for row in stack.rows("connections")] == [ALICE_CONN]
    offline = stack.frames(ALICE_CONN, "presence")[-1]
    assert (offline["user_id"], offline["online"]) == (bob["user"]["id"], False)
    assert isinstance(offline["last_seen_at"], int)
    assert len(stack.frames(ALICE_CONN, "presence")) == 2


# --- the schedule --------------------------------------------------------------------------


def test_the_scheduled_event_deletes_an_expired_message_and_announces_it(stack, pair):
    alice, bob, chat = pair
    stack.connect(ALICE_CONN, stack.ticket(alice))
    stack.connect(BOB_PHONE_CONN, stack.ticket(bob))
    for body in ("expires", "stays"):
        stack.frame(ALICE_CONN, action="send", conversation_id=chat, client_msg_id=new_id(),
                    body=body)
    stack.db.run_transaction("t", lambda txn: txn.execute(
        "UPDATE messages SET expires_at = 1 WHERE seq = 1"))

    figures = stack.client.lambda_.invoke("scheduled_cleanup", sample("scheduled")).payload

    assert {k: figures[k] for k in ("deleted", "batches", "finished", "backlog")} == {
        "deleted": 1, "batches": 1, "finished": True, "backlog": 0}
    assert [(row["seq"], row["body"]) for row in stack.rows("messages", "seq")] == [
        (2, "stays")]
    (expired,) = stack.frames(BOB_PHONE_CONN, "expired")
    assert (expired["conversation_id"], expired["ranges"]) == (chat, [[1, 1]])
