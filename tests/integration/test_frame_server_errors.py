"""A frame that fails unexpectedly is answered `internal` and counted as a server error: its
invocation succeeds (the caller got an error frame), so only the frame itself can count it for
the ServerErrors alarm (docs/OPERATE.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.observability import metrics
from chalicelib.services import frames
from chalicelib.services.context import Context
from chalicelib.services.limits import NoLimits
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush


@pytest.fixture
def world(db, clock) -> Iterator[World]:
    metrics.clear_metrics()
    push = RecordingPush()
    yield World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS), push)
    metrics.clear_metrics()


def server_errors() -> list[float]:
    return list(metrics.metric_set.get("ServerErrors", {}).get("Value", []))


def test_a_frame_that_fails_unexpectedly_answers_internal_and_counts_a_server_error(
        world, monkeypatch):
    alice = world.person()
    phone = world.device(alice)

    def broken(caller, frame, ctx):
        raise RuntimeError("a bug")

    monkeypatch.setitem(frames.ACTIONS, "ping", broken)
    world.frame(phone, "ping", req="p1")

    assert world.last(phone, "error")["code"] == "internal"
    assert server_errors() == [1.0]


def test_a_refused_frame_is_no_server_error(world):
    alice = world.person()
    phone = world.device(alice)

    world.frame(phone, "send", conversation_id="nowhere", client_msg_id="short", body="x")

    assert world.last(phone, "error")["code"] == "bad_request"
    assert server_errors() == []
