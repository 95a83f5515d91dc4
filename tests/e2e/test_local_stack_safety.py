"""The local stack against a hostile client: a frame flood, text forged into its log, and a
page on another origin reaching `/dev/*` through a re-pointed name (DNS rebinding)."""

from __future__ import annotations

import json
import re

import pytest
from websockets.exceptions import ConnectionClosed

from chalicelib.config import parse_database_url
from chalicelib.storage.database import Database
from chalicelib.storage.engines import create_engine
from tests.e2e.conftest import RunningStack, StackClient
from tests.e2e.test_local_stack import connection_rows, wait_for

ALICE, BOB = "+14155550101", "+14155550102"
FLOOD_FRAMES = 1_000


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
