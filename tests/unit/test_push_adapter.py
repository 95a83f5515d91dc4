"""The push adapter speaks API Gateway's management API: SigV4-signed posts and deletes on
kept-alive connections, GoneException as False, throttling, 5xx and timeouts retried."""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.adapters.push import ApiGatewayPush, PushFailed, RetryPolicy, region_of
from chalicelib.errors import ConfigError
from tests.support.polling import eventually

# Shaped like API Gateway's ids: base64-ish, with '=' (and case that matters).
CONNECTION_ID = "L0SM9cOFvHcCIhw="
# Short timeouts and pauses, so a stalled call costs the test a fraction of a second.
QUICK = RetryPolicy(attempts=3, connect_timeout_s=1.0, read_timeout_s=0.3, deadline_s=3.0,
                    backoff_base_s=0.01, backoff_cap_s=0.05)


@pytest.fixture
def push(management_api) -> ApiGatewayPush:
    management_api.live.add(CONNECTION_ID)
    return ApiGatewayPush(management_api.endpoint, policy=QUICK)


def test_a_frame_reaches_the_connection_signed_and_utf8(management_api, push):
    delivered = push.send(CONNECTION_ID, {"type": "message", "body": "héllo 👋"})

    assert delivered is True
    (call,) = management_api.calls_to(CONNECTION_ID, "POST")
    assert call.signed
    assert call.body.decode() == '{"type":"message","body":"héllo 👋"}'
    assert json.loads(call.body) == {"type": "message", "body": "héllo 👋"}


def test_the_request_is_signed_for_execute_api_in_the_stacks_region(
        management_api, push, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    regional = ApiGatewayPush(management_api.endpoint, policy=QUICK)

    regional.send(CONNECTION_ID, {"type": "pong"})

    (call,) = management_api.calls_to(CONNECTION_ID, "POST")
    credential = call.authorization.split("Credential=", 1)[1].split(",", 1)[0]
    assert credential.endswith("/eu-west-3/execute-api/aws4_request")
    assert "SignedHeaders=" in call.authorization and "Signature=" in call.authorization


def test_the_signing_region_comes_from_an_aws_endpoint_host(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")

    assert region_of("https://a1b2c3d4e5.execute-api.ap-southeast-2.amazonaws.com/api") == (
        "ap-southeast-2")
    assert region_of("http://127.0.0.1:8000/local") == "us-east-1"


def test_a_gone_connection_is_reported_not_raised(management_api, push):
    assert push.send("gone-connection=", {"type": "pong"}) is False
    assert push.disconnect("gone-connection=") is False


def test_gone_is_answered_once_without_a_retry(management_api, push):
    management_api.fail(CONNECTION_ID, status=410, times=3)

    assert push.send(CONNECTION_ID, {"type": "pong"}) is False
    assert [a.status for a in management_api.attempts_to(CONNECTION_ID)] == [410]


def test_disconnect_closes_a_live_connection_once(management_api, push):
    assert push.disconnect(CONNECTION_ID) is True
    assert push.disconnect(CONNECTION_ID) is False
    assert len(management_api.calls_to(CONNECTION_ID, "DELETE")) == 1


@pytest.mark.parametrize("status", [429, 500, 502])
def test_throttling_and_server_errors_are_retried_until_the_push_lands(
        management_api, push, status):
    management_api.fail(CONNECTION_ID, status=status, times=2)

    assert push.send(CONNECTION_ID, {"type": "pong"}) is True
    assert [a.status for a in management_api.attempts_to(CONNECTION_ID)] == [
        status, status, 200]
    assert len(management_api.calls_to(CONNECTION_ID, "POST")) == 1


def test_a_call_that_stalls_past_the_read_timeout_is_retried(management_api, push):
    management_api.fail(CONNECTION_ID, status=None, times=1, delay_s=QUICK.read_timeout_s * 3)

    assert push.send(CONNECTION_ID, {"type": "pong"}) is True
    assert len(management_api.attempts_to(CONNECTION_ID)) == 2


def test_retries_exhausted_raise_push_failed_naming_the_connection(management_api, push):
    management_api.fail(CONNECTION_ID, status=500, times=QUICK.attempts)

    with pytest.raises(PushFailed, match=f"{CONNECTION_ID}.*HTTP 500") as failed:
        push.send(CONNECTION_ID, {"type": "message", "body": "secret words"})

    assert "secret words" not in str(failed.value)
    assert len(management_api.attempts_to(CONNECTION_ID)) == QUICK.attempts


def test_a_refusal_other_than_gone_or_throttling_raises_at_once(management_api, push):
    management_api.fail(CONNECTION_ID, status=403, times=3)

    with pytest.raises(PushFailed, match="HTTP 403 ForbiddenException"):
        push.send(CONNECTION_ID, {"type": "pong"})
    assert len(management_api.attempts_to(CONNECTION_ID)) == 1


def test_an_endpoint_that_refuses_connections_raises_push_failed(push):
    from tests.support.ports import free_port

    unreachable = ApiGatewayPush(f"http://127.0.0.1:{free_port()}/local", policy=QUICK)

    with pytest.raises(PushFailed, match="gave up after 3 attempt"):
        unreachable.send(CONNECTION_ID, {"type": "pong"})


def test_many_pushes_from_one_thread_share_one_kept_alive_connection(management_api, push):
    for i in range(20):
        assert push.send(CONNECTION_ID, {"type": "pong", "req": str(i)})

    assert len(management_api.client_ports()) == 1


def test_concurrent_pushes_use_at_most_one_connection_per_delivery_thread(
        management_api, push):
    with ThreadPoolExecutor(max_workers=8) as threads:
        results = list(threads.map(
            lambda i: push.send(CONNECTION_ID, {"type": "pong", "req": str(i)}), range(200)))

    assert all(results)
    assert 1 <= len(management_api.client_ports()) <= 8


def test_pushes_started_together_are_in_flight_at_once_from_one_thread(management_api, push):
    connections = [f"Conn{i}AAAAAAAAA=" for i in range(4)]
    for connection_id in connections:
        management_api.live.add(connection_id)
        management_api.fail(connection_id, status=None, delay_s=0.3)  # answers held back

    flights = [push.start(connection_id, {"type": "pong"}) for connection_id in connections]
    all_arrived = eventually(lambda: len(management_api.attempts) == len(connections),
                             timeout_s=2, interval_s=0.005)

    assert all_arrived  # every request reached the server before any answer was read
    assert [flight.finish() for flight in flights] == [True] * 4
    assert len(management_api.client_ports()) == 4


def test_a_started_push_refused_for_a_while_is_retried_when_finished(management_api, push):
    management_api.fail(CONNECTION_ID, status=500, times=2)

    flight = push.start(CONNECTION_ID, {"type": "pong"})

    assert flight.finish() is True
    assert [a.status for a in management_api.attempts_to(CONNECTION_ID)] == [500, 500, 200]


def test_the_endpoint_is_resolved_once_on_the_first_push(management_api):
    management_api.live.add(CONNECTION_ID)
    asked = []

    def resolve() -> str:
        asked.append(1)
        return management_api.endpoint

    push = ApiGatewayPush(resolve_endpoint=resolve, policy=QUICK)
    assert asked == []
    push.send(CONNECTION_ID, {"type": "pong"})
    push.send(CONNECTION_ID, {"type": "pong"})

    assert asked == [1]


def test_pushing_without_an_endpoint_names_the_missing_variable():
    with pytest.raises(ConfigError, match="WS_MANAGEMENT_ENDPOINT"):
        ApiGatewayPush(None).send(CONNECTION_ID, {"type": "pong"})


# --- the response's framing, read without the `email` parser ---------------------------


# Among a CannedServer's responses: read the request, then close the connection unanswered (a
# kept-alive connection the server dropped just as our request went out on it).
HANG_UP = b""


class CannedServer:
    """A raw HTTP/1.1 server on a real port that answers each request with the next of its
    canned responses, byte for byte, and counts the connections it was reached on."""

    def __init__(self, responses: list[bytes]) -> None:
        self.responses = list(responses)
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}/local"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.responses:
            conn, _ = self._listener.accept()
            self.connections += 1
            with conn, conn.makefile("rb") as requests:
                while self.responses and self._read_request(requests):
                    response = self.responses.pop(0)
                    if response == HANG_UP:
                        break  # the request read, the connection closed without a word
                    conn.sendall(response)
                    if b"Connection: close" in response:
                        break

    @staticmethod
    def _read_request(requests) -> bool:
        length = 0
        while (line := requests.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if not line:
            return False
        requests.read(length)
        return True


def test_a_chunked_gone_answer_is_read_whole_and_its_connection_kept():
    server = CannedServer([
        b"HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException:http://internal/\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"message\":null}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ])
    push = ApiGatewayPush(server.endpoint, policy=QUICK)

    assert push.send(CONNECTION_ID, {"type": "pong"}) is False
    assert push.send(CONNECTION_ID, {"type": "pong"}) is True
    assert server.connections == 1


def test_an_answer_framed_by_its_close_is_read_to_the_end_and_not_reused():
    server = CannedServer([
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
    ])
    push = ApiGatewayPush(server.endpoint, policy=QUICK)

    assert push.send(CONNECTION_ID, {"type": "pong"}) is True
    assert push.send(CONNECTION_ID, {"type": "pong"}) is True
    assert server.connections == 2


def test_a_kept_alive_connection_the_server_closed_is_replaced_at_once():
    server = CannedServer([
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", HANG_UP,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ])
    push = ApiGatewayPush(server.endpoint, policy=RetryPolicy(attempts=1))

    assert push.send(CONNECTION_ID, {"type": "pong"}) is True
    assert push.send(CONNECTION_ID, {"type": "pong"}) is True  # sent again, on a new one
    assert server.connections == 2


def test_a_refusal_names_its_error_type_whatever_the_header_case():
    server = CannedServer([
        b"HTTP/1.1 403 Forbidden\r\nX-Amzn-ErrorType: ForbiddenException\r\n"
        b"Content-Length: 2\r\n\r\n{}",
    ])
    push = ApiGatewayPush(server.endpoint, policy=QUICK)

    with pytest.raises(PushFailed, match="HTTP 403 ForbiddenException"):
        push.send(CONNECTION_ID, {"type": "pong"})


def test_an_interim_continue_is_skipped_for_the_answer_after_it():
    server = CannedServer([
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n",
    ])
    push = ApiGatewayPush(server.endpoint, policy=QUICK)

    assert push.send(CONNECTION_ID, {"type": "pong"}) is False


def test_an_answer_that_is_not_http_is_retried_on_a_new_connection():
    server = CannedServer([
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ])
    push = ApiGatewayPush(server.endpoint, policy=QUICK)

    assert push.send(CONNECTION_ID, {"type": "pong"}) is True
    assert server.connections == 2
