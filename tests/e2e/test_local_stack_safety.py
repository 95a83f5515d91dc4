"""The local stack against a hostile client: a frame flood, text forged into its log, and a
page on another origin reaching `/dev/*` through a re-pointed name (DNS rebinding)."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosed

from chalicelib.config import parse_database_url
from chalicelib.storage.database import Database
from chalicelib.storage.engines import create_engine
from tests.e2e.conftest import RunningStack, StackClient
from tests.e2e.test_local_stack import connection_rows, wait_for

ALICE, BOB = "+14155550101", "+14155550102"
FLOOD_FRAMES = 1_000
# A log line as the stack writes one, at a time of day that never comes: if it starts a line
# of the log, a client wrote it.
FORGED_LINE = "99:99:99 ws   Rk9SR0VEAAAAAAA= closed 1000 (forged)"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab and newline


def _pong(client_socket, req: str) -> dict:
    client_socket.send(json.dumps({"action": "ping", "req": req}))
    while True:
        frame = json.loads(client_socket.recv(timeout=10))
        if frame.get("req") == req:
            return frame


def test_a_socket_flooding_frames_faster_than_workers_drain_them_is_closed_with_1008(
    fresh_database_url,
):
    stack = RunningStack({"DATABASE_URL": fresh_database_url, "LOCAL_WORKERS": "1",
                          "LOCAL_MAX_QUEUED_FRAMES": "4"})
    db = Database(create_engine(parse_database_url(fresh_database_url)))
    try:
        stack.wait_until_ready()
        client = StackClient(stack)
        alice, bob = client.login(ALICE), client.login(BOB)
        bystander = client.open_socket(bob)
        flooder = client.open_socket(alice)

        with pytest.raises(ConnectionClosed) as closed:
            for i in range(FLOOD_FRAMES):
                flooder.send(json.dumps({"action": "ping", "req": str(i)}))
            while True:
                flooder.recv(timeout=10)

        assert closed.value.rcvd.code == 1008
        assert 0 < len(closed.value.rcvd.reason) <= 123
        # $disconnect ran as for any close; the other socket and new ones are served as before
        wait_for(lambda: [r["user_id"] for r in connection_rows(db)] == [bob.user_id])
        assert _pong(bystander, "after-the-flood")["type"] == "pong"
        assert _pong(client.open_socket(alice), "a-new-socket")["type"] == "pong"
        assert re.search(r" closed 1008 \(", stack.output())
    finally:
        stack.stop()
        db.close()


def test_text_a_client_chose_reaches_the_log_escaped_on_one_line_and_capped(stack, stack_db):
    log_start = len(stack.stack.output())
    client_socket = stack.open_socket(stack.login(ALICE))
    (row,) = connection_rows(stack_db)

    # (the stack logs a close with a reason of its own, as API Gateway reports it; whatever
    # the client's reason, it must not become a line of the log)
    client_socket.close(code=1000, reason=f"bye\n{FORGED_LINE}\x1b[2J\r")
    wait_for(lambda: connection_rows(stack_db) == [])
    status, _, _ = stack.request("GET", "/no-route%0A%0D" + quote(FORGED_LINE) + "%1B%5B2J")
    assert status == 403
    status, _, _ = stack.request("GET", "/" + "x" * 4_000)
    assert status == 403

    logged = stack.stack.output()[log_start:]
    lines = logged.splitlines()  # splits at \r and U+2028 too, as a terminal or viewer might
    assert f"{row['id']} closed 1000" in logged
    assert [line for line in lines if line.startswith("99:99:99")] == []
    assert [line for line in lines if CONTROL_CHARACTERS.search(line)] == []
    assert "/no-route\\n\\r99:99:99 ws" in logged  # still there to read, escaped
    (long_path_line,) = [line for line in lines if "xxxxxxxxxx" in line]
    assert long_path_line.endswith("x... -> 403 (no route)") and len(long_path_line) < 250


@pytest.mark.parametrize("path", ["/" + "x" * 4_000, "/a%00b", "/assets/%00.js"])
def test_a_path_no_file_can_have_is_api_gateways_403_not_a_500(stack, path):
    status, reply, _ = stack.request("GET", path)

    assert status == 403
    assert reply == {"message": "Missing Authentication Token"}


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1.nip.io:{port}",
                                  "127.0.0.1:1", "localhost", ""])
def test_the_outbox_refuses_a_request_addressed_to_another_host(stack, host):
    stack.request("POST", "/auth/otp", {"phone": ALICE})

    status, reply, _ = stack.request(
        "GET", "/dev/outbox?phone=%2B14155550101",
        headers={"Host": host.format(port=stack.stack.port)})

    assert status == 403
    assert reply["error"]["code"] == "forbidden" and reply["error"]["message"]
    assert "messages" not in reply


def test_the_outbox_refuses_another_host_before_reading_the_request(stack):
    status, reply, _ = stack.request(
        "GET", "/dev/outbox?phone=not-a-phone",
        headers={"Host": f"evil.example:{stack.stack.port}"})

    assert status == 403 and reply["error"]["code"] == "forbidden"


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost:{port}"])
def test_the_outbox_answers_the_stacks_own_names(stack, host):
    stack.request("POST", "/auth/otp", {"phone": ALICE})

    status, reply, _ = stack.request(
        "GET", "/dev/outbox?phone=%2B14155550101",
        headers={"Host": host.format(port=stack.stack.port)})

    assert status == 200
    assert len(reply["messages"]) == 1
