"""Domain errors become PROTOCOL.md's REST bodies and `error` frames, in one place."""

from __future__ import annotations

import json

import pytest

from chalicelib.errors import (
    Conflict,
    EphemeraError,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
)
from chalicelib.replies import error_response, json_response, rest
from chalicelib.wire import error_frame


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidInput("x"), 400, "bad_request"),
        (Unauthorized("x"), 401, "unauthorized"),
        (Forbidden("x"), 403, "forbidden"),
        (NotFound("x"), 404, "not_found"),
        (Conflict("x"), 409, "conflict"),
        (Gone("x"), 410, "gone"),
        (TooLarge("x"), 413, "too_large"),
        (RateLimited("x", retry_after_ms=1), 429, "rate_limited"),
        (EphemeraError("x"), 500, "internal"),
    ],
)
def test_each_error_kind_has_its_protocol_status_and_code(error, status, code):
    response = error_response(error)

    assert response.status_code == status
    assert json.loads(response.body)["error"]["code"] == code


def test_extra_facts_sit_beside_the_code():
    response = error_response(Unauthorized("wrong code", attempts_left=2))

    assert json.loads(response.body) == {
        "error": {"code": "unauthorized", "message": "wrong code", "attempts_left": 2}
    }


@pytest.mark.parametrize(("retry_after_ms", "header"), [(1, "1"), (1000, "1"), (1001, "2")])
def test_rate_limited_replies_carry_retry_after_in_whole_seconds(retry_after_ms, header):
    response = error_response(RateLimited("slow down", retry_after_ms=retry_after_ms))

    assert response.headers["Retry-After"] == header
    assert json.loads(response.body)["error"]["retry_after_ms"] == retry_after_ms


def test_error_frames_echo_req_and_flatten_the_error():
    frame = error_frame(RateLimited("slow down", retry_after_ms=250), req="r-7")

    assert frame == {"type": "error", "req": "r-7", "code": "rate_limited",
                     "message": "slow down", "retry_after_ms": 250}
    assert "req" not in error_frame(NotFound("no"))


def test_json_replies_are_utf8_not_escaped():
    response = json_response({"body": "héllo 👋"})

    assert response.body == '{"body":"héllo 👋"}'
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def test_a_route_raising_a_domain_error_gets_its_reply():
    @rest
    def view():
        raise NotFound("no such conversation")

    response = view()

    assert response.status_code == 404
    assert json.loads(response.body)["error"]["code"] == "not_found"


def test_an_unexpected_failure_becomes_internal_without_its_message():
    @rest
    def view():
        raise ValueError("secret detail from deep inside")

    response = view()

    assert response.status_code == 500
    assert json.loads(response.body) == {
        "error": {"code": "internal", "message": "something went wrong on our side"}
    }
