"""The push adapter against the local stack's real management API: frames arrive exactly,
unknown ids are gone, deletes close sockets, and the stack's fault hook fails pushes the way
API Gateway does."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import urllib3
from websockets.exceptions import ConnectionClosed

from chalicelib.adapters.push import ApiGatewayPush, PushFailed, RetryPolicy
from tests.e2e.test_local_stack import ALICE, connection_rows

QUICK = RetryPolicy(attempts=3, read_timeout_s=0.5, deadline_s=5.0, backoff_base_s=0.01,
                    backoff_cap_s=0.05)


@pytest.fixture
def push(stack) -> ApiGatewayPush:
    return ApiGatewayPush(f"{stack.base_url}/local", policy=QUICK)


@pytest.fixture
def faults(stack) -> Iterator:
    """Sets a fault on the stack's management API; every fault is cleared after the test."""
    http = urllib3.PoolManager()

    def add(**fault: object) -> None:
        reply = http.request("POST", f"{stack.base_url}/local/@faults", json=fault)
        assert reply.status == 204, reply.data

    yield add
    http.request("DELETE", f"{stack.base_url}/local/@faults")


@pytest.fixture
def live(stack, stack_db):
    """A signed-in socket and its connection id."""
    client_socket = stack.open_socket(stack.login(ALICE))
    (row,) = connection_rows(stack_db)
    return client_socket, row["id"]


def test_a_push_to_a_live_socket_arrives_as_the_exact_frame(push, live):
    client_socket, connection_id = live
    frame = {"type": "message", "body": "héllo 👋 \u2028 \"quoted\"", "seq": 7}

    assert push.send(connection_id, frame) is True

    received = client_socket.recv(timeout=5)
    assert received == json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def test_a_push_to_an_unknown_connection_is_gone(push, stack):
    assert push.send("NoSuchConnId0A=", {"type": "pong"}) is False


def test_disconnect_closes_the_socket_and_the_id_is_gone_after(push, live):
    client_socket, connection_id = live

    assert push.disconnect(connection_id) is True

    with pytest.raises(ConnectionClosed):
        client_socket.recv(timeout=5)
    assert push.send(connection_id, {"type": "pong"}) is False


def test_throttled_pushes_are_retried_and_the_frame_arrives_once(push, live, faults):
    client_socket, connection_id = live
    faults(connection_id=connection_id, status=429, times=2)

    assert push.send(connection_id, {"type": "pong", "req": "after-throttling"}) is True

    assert json.loads(client_socket.recv(timeout=5)) == {"type": "pong",
                                                         "req": "after-throttling"}
    with pytest.raises(TimeoutError):
        client_socket.recv(timeout=0.3)


def test_a_fault_of_410_makes_a_live_connection_look_gone(push, live, faults):
    _, connection_id = live
    faults(connection_id=connection_id, status=410)

    assert push.send(connection_id, {"type": "pong"}) is False
    assert push.send(connection_id, {"type": "pong"}) is True  # only `times` pushes fail


def test_a_push_that_keeps_failing_raises_push_failed(push, live, faults):
    _, connection_id = live
    faults(connection_id=connection_id, status=500, times=QUICK.attempts)

    with pytest.raises(PushFailed, match="HTTP 500 InternalServerErrorException"):
        push.send(connection_id, {"type": "pong"})


def test_a_stalled_push_is_retried_after_the_read_timeout(push, live, faults):
    client_socket, connection_id = live
    faults(status=None, delay_ms=int(QUICK.read_timeout_s * 3000))  # any connection

    assert push.send(connection_id, {"type": "pong", "req": "late"}) is True

    first = json.loads(client_socket.recv(timeout=5))
    assert first == {"type": "pong", "req": "late"}


@pytest.mark.parametrize("fault", [{"status": 200}, {"times": 0}, {"delay_ms": -1},
                                   {"connection_id": ""}, ["not", "an", "object"]])
def test_a_malformed_fault_is_refused(stack, fault):
    reply = urllib3.PoolManager().request("POST", f"{stack.base_url}/local/@faults", json=fault)

    assert reply.status == 400
