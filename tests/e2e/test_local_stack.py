"""The local stack end to end, over real sockets: it serves the Chalice app as API Gateway
and Lambda would (REST events, WebSocket events, management API, limits, schedule)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time

import boto3
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.e2e.conftest import IDLE_TIMEOUT_S, RunningStack, StackClient

ALICE, BOB = "+14155550101", "+14155550102"


def connection_rows(stack_db) -> list[dict]:
    def select(txn):
        txn.execute("SELECT id, user_id, device_id FROM connections ORDER BY connected_at")
        return txn.fetchall()

    return stack_db.run_read("t", select)


def wait_for(condition, timeout_s: float = 10, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError("the condition did not become true in time")


def management_client(stack: StackClient):
    return boto3.client("apigatewaymanagementapi", endpoint_url=f"{stack.base_url}/local",
                        region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local")


def test_two_users_log_in_by_sms_and_open_two_sockets_each(stack, stack_db):
    alice_phone, alice_laptop = stack.login(ALICE), stack.login(ALICE, "laptop")
    bob_phone, bob_laptop = stack.login(BOB), stack.login(BOB, "laptop")

    sockets = [stack.open_socket(s) for s in (alice_phone, alice_laptop, bob_phone, bob_laptop)]

    rows = connection_rows(stack_db)
    assert [(r["user_id"], r["device_id"]) for r in rows] == [
        (s.user_id, s.device_id) for s in (alice_phone, alice_laptop, bob_phone, bob_laptop)]
    for client_socket in sockets:
        client_socket.close()
    wait_for(lambda: connection_rows(stack_db) == [])


def test_the_management_api_posts_to_gets_and_deletes_a_live_connection(stack, stack_db):
    client_socket = stack.open_socket(stack.login(ALICE))
    (row,) = connection_rows(stack_db)
    management = management_client(stack)

    management.post_to_connection(ConnectionId=row["id"], Data=b'{"type":"pong","req":"1"}')
    received = json.loads(client_socket.recv(timeout=5))
    described = management.get_connection(ConnectionId=row["id"])
    management.delete_connection(ConnectionId=row["id"])

    assert received == {"type": "pong", "req": "1"}
    assert described["Identity"]["SourceIp"] == "127.0.0.1"
    assert described["ConnectedAt"].year >= 2026
    with pytest.raises(ConnectionClosed):
        client_socket.recv(timeout=5)
    wait_for(lambda: connection_rows(stack_db) == [])
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId=row["id"], Data=b"{}")


def test_connection_ids_look_like_api_gateways(stack, stack_db):
    stack.open_socket(stack.login(ALICE))

    (row,) = connection_rows(stack_db)

    assert len(row["id"]) == 16 and row["id"].endswith("=") and "/" not in row["id"]


def test_a_gone_id_raises_gone_exception_from_boto3(stack):
    management = management_client(stack)

    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId="Tm9TdWNoSWQ=", Data=b"{}")
    with pytest.raises(management.exceptions.GoneException):
        management.delete_connection(ConnectionId="Tm9TdWNoSWQ=")


@pytest.mark.parametrize("query", ["", "?ticket=", "?ticket=forged.ticket.value"])
def test_a_handshake_with_a_bad_ticket_is_refused_and_leaves_no_row(stack, stack_db, query):
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{stack.base_url.replace('http', 'ws')}/ws{query}", open_timeout=10,
                legacy=True)

    assert refused.value.response.status_code == 401
    assert connection_rows(stack_db) == []


def test_a_ticket_opens_one_socket_only(stack, stack_db):
    ticket = stack.ticket(stack.login(ALICE))
    url = f"{ticket['url']}?ticket={ticket['ticket']}"
    first = connect(url, open_timeout=10, legacy=True)

    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10, legacy=True)

    assert refused.value.response.status_code == 401
    assert len(connection_rows(stack_db)) == 1
    first.close()


def test_a_frame_over_32_kb_closes_the_socket_with_1009(stack, stack_db):
    client_socket = stack.open_socket(stack.login(ALICE))

    client_socket.send(json.dumps({"action": "ping", "pad": "x" * 33_000}))

    with pytest.raises(ConnectionClosed) as closed:
        client_socket.recv(timeout=5)
    assert closed.value.rcvd.code == 1009
    wait_for(lambda: connection_rows(stack_db) == [])


def test_an_idle_socket_is_closed_and_its_row_removed(stack, stack_db):
    client_socket = stack.open_socket(stack.login(ALICE))

    with pytest.raises(ConnectionClosed) as closed:
        client_socket.recv(timeout=IDLE_TIMEOUT_S + 5)

    # The stack's idle timer (1001) and the scheduled sweep, which drops idle rows and deletes
    # their sockets (1000), share WS_IDLE_TIMEOUT_S: on a loaded machine either may come first.
    assert closed.value.rcvd.code in (1001, 1000)
    wait_for(lambda: connection_rows(stack_db) == [])


def test_a_socket_is_closed_at_the_maximum_connection_duration_even_when_busy(
    fresh_database_url,
):
    stack = RunningStack({"DATABASE_URL": fresh_database_url, "WS_MAX_CONNECTION_S": "2"})
    try:
        stack.wait_until_ready()
        client = StackClient(stack)
        client_socket = client.open_socket(client.login(ALICE))
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() - started < 10:
                client_socket.send('{"action": "ping"}')  # activity does not extend it
                try:
                    client_socket.recv(timeout=0.5)
                except TimeoutError:  # a pong slowed by a loaded machine: stay busy
                    continue
        assert closed.value.rcvd.code == 1001
        assert time.monotonic() - started < 5
    finally:
        stack.stop()


def test_logout_closes_that_devices_socket_and_not_the_other(stack, stack_db):
    phone, laptop = stack.login(ALICE), stack.login(ALICE, "laptop")
    phone_socket, laptop_socket = stack.open_socket(phone), stack.open_socket(laptop)

    status, _, _ = stack.request("POST", "/auth/logout", token=phone.access_token)

    assert status == 204
    with pytest.raises(ConnectionClosed):
        phone_socket.recv(timeout=5)
    assert [r["device_id"] for r in connection_rows(stack_db)] == [laptop.device_id]
    laptop_socket.ping().wait(5)  # still open


def test_the_schedule_runs_the_expiry_engine(stack, stack_db):
    def insert_expired(txn):
        txn.execute(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, sender_device_id,"
            " client_msg_id, body, created_at, expires_at)"
            " VALUES ('01EXPIREDMESSAGE0000000000', 'c', 1, 'u', 'd', 'client-1', 'x', 1, 2)")

    stack_db.run_transaction("t", insert_expired)

    def messages_left(txn):
        txn.execute("SELECT COUNT(*) AS n FROM messages")
        return txn.fetchone()["n"]

    wait_for(lambda: stack_db.run_read("t", messages_left) == 0, timeout_s=10)


def test_rest_errors_keep_the_protocol_shape_whatever_the_content_type(stack):
    status, reply, _ = stack.request("POST", "/auth/otp", "phone=+14155550101",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert status == 400
    assert reply["error"]["code"] == "bad_request"


def test_a_path_with_no_route_is_api_gateways_403(stack):
    status, reply, _ = stack.request("POST", "/no/such/route", {})

    assert status == 403
    assert reply == {"message": "Missing Authentication Token"}


def test_a_path_with_a_newline_is_routed_like_any_other(stack):
    session = stack.login(ALICE)

    status, reply, _ = stack.request("GET", "/conversations/a%0Ab/messages",
                                     token=session.access_token)
    assert status == 404 and reply["error"]["code"] == "not_found"
    status, reply, _ = stack.request("GET", "/no/such%0Aroute")
    assert status == 403 and reply == {"message": "Missing Authentication Token"}


def test_the_outbox_shows_codes_newest_first(stack):
    stack.request("POST", "/auth/otp", {"phone": ALICE})
    stack.request("POST", "/auth/otp", {"phone": ALICE})

    messages = stack.outbox(ALICE)

    assert len(messages) == 2
    assert set(messages[0]) == {"phone", "code", "text", "sent_at"}
    assert messages[0]["sent_at"] >= messages[1]["sent_at"]
    assert messages[0]["code"] in messages[0]["text"]


def test_the_web_client_page_carries_the_stacks_addresses(stack):
    status, page, _ = stack.request("GET", "/", headers={"Accept": "text/html"})

    assert status == 200
    assert f'"wsUrl": "{stack.base_url.replace("http", "ws")}/ws"' in page


def test_the_web_client_page_allows_only_its_own_scripts_and_the_injected_config(stack):
    _, page, headers = stack.request("GET", "/", headers={"Accept": "text/html"})

    policy = dict(part.strip().split(" ", 1) for part in
                  headers["Content-Security-Policy"].split(";"))
    config_script = re.search(r"<script>(window\.EPHEMERA_CONFIG[^<]*)</script>", page).group(1)
    digest = base64.b64encode(hashlib.sha256(config_script.encode()).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_stack_starts_on_the_embedded_database_and_stops_cleanly_on_ctrl_c(tmp_path):
    stack = RunningStack({"DATABASE_URL": f"sqlite:///{tmp_path / 'local.db'}"})
    try:
        stack.wait_until_ready()
        client = StackClient(stack)
        client_socket = client.open_socket(client.login(ALICE))
    finally:
        exit_code = stack.stop()

    assert exit_code == 0, stack.output()
    with pytest.raises(ConnectionClosed):
        client_socket.recv(timeout=5)
    assert "Ephemera is running at" in stack.output()


def test_a_scheduled_run_never_holds_the_worker_that_requests_need(fresh_database_url):
    """Each scheduled function has a container of its own, as on AWS: the presence watch,
    which waits through most of its minute while anyone is connected, leaves the one shared
    worker free. (On the shared pool, requests here would wait up to 3 s behind it.)"""
    stack = RunningStack({"DATABASE_URL": fresh_database_url, "LOCAL_WORKERS": "1",
                          "EXPIRY_INTERVAL_S": "4", "PRESENCE_SWEEP_EVERY_S": "1",
                          "PRESENCE_SILENT_AFTER_S": "2", "WS_IDLE_TIMEOUT_S": "60"})
    try:
        stack.wait_until_ready()
        client = StackClient(stack)
        socket = client.open_socket(client.login("+14155550101"))
        slowest_s = 0.0
        until = time.monotonic() + 9  # two runs of the watch, each watching ~3 s of its 4
        while time.monotonic() < until:
            socket.send(json.dumps({"action": "ping"}))  # a live connection: worth watching
            started = time.monotonic()
            status, _, _ = client.request("GET", "/health")
            slowest_s = max(slowest_s, time.monotonic() - started)
            assert status == 200
            time.sleep(0.3)
        client.close_sockets()
        # Ctrl-C during a watch cuts it short: a clean exit, never a wait for its minute
        assert stack.stop() == 0, stack.output()[-2000:]
    finally:
        stack.stop()
    sweeps = [int(n) for n in re.findall(r'cron presence_watch -> .*"presence_sweeps": (\d+)',
                                         stack.output())]
    assert sweeps and max(sweeps) >= 2, f"the watch never watched: {stack.output()[-2000:]}"
    assert slowest_s < 1.5, f"a request waited {slowest_s:.1f} s behind a scheduled run"
