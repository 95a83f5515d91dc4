"""The fan-out plan (what is pushed now, what is queued and how it is cut) and the SQS adapter
that enqueues it (on moto's SQS)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.queue import (
    BATCH_BYTES,
    BATCH_ENTRIES,
    SqsFanoutQueue,
    batches,
    endpoint_of,
)
from chalicelib.errors import ConfigError
from chalicelib.services import fanout
from chalicelib.services.fanout import (
    CONNECTIONS_PER_MESSAGE,
    FRAMES_BYTES_PER_MESSAGE,
    plan,
    read_batch,
)


def addressed(frame: dict, connection_ids: list[str]) -> list[tuple[str, dict]]:
    return [(cid, frame) for cid in connection_ids]


def connections(count: int, prefix: str = "c") -> list[str]:
    return [f"{prefix}{n}=" for n in range(count)]


def unpacked(bodies: list[str]) -> list[tuple[str, dict]]:
    """Every (connection, frame) the queued bodies will push, in the order a worker pushes."""
    return [push for body in bodies for push in read_batch(body).pushes]


def test_at_most_the_threshold_everything_is_pushed_now():
    sent = {"type": "sent", "seq": 1}
    message = {"type": "message", "seq": 1}
    frames = [("me=", sent), *addressed(message, connections(3))]

    result = plan(frames, answering="me=", async_above=3)

    assert result.now == frames
    assert result.queued == []


def test_above_the_threshold_only_the_answer_is_pushed_now_and_every_other_frame_is_queued():
    sent = {"type": "sent", "seq": 1}
    message = {"type": "message", "seq": 1}
    others = connections(4)
    frames = [("me=", sent), *addressed(message, others)]

    result = plan(frames, answering="me=", async_above=3)

    assert result.now == [("me=", sent)]
    assert result.queued_connections == 4
    assert sorted(unpacked(result.queued)) == sorted(addressed(message, others))


def test_connections_that_get_the_same_frames_share_one_queue_message():
    message, unread = {"type": "message", "seq": 7}, {"type": "unread", "count": 0}
    members, own_devices = connections(5, "m"), connections(2, "own")
    frames = [*addressed(message, members + own_devices), *addressed(unread, own_devices)]

    result = plan(frames, answering=None, async_above=3)

    assert len(result.queued) == 2
    batches_read = [read_batch(body) for body in result.queued]
    assert {tuple(b.connection_ids) for b in batches_read} == {tuple(members), tuple(own_devices)}
    assert [b.frames for b in batches_read if b.connection_ids == own_devices] == [
        [message, unread]]  # a connection's frames keep their order


def test_connections_are_cut_into_messages_of_at_most_two_hundred():
    others = connections(2 * CONNECTIONS_PER_MESSAGE + 1)

    result = plan(addressed({"type": "message"}, others), answering=None, async_above=50)

    sizes = [len(read_batch(body).connection_ids) for body in result.queued]
    assert sizes == [CONNECTIONS_PER_MESSAGE, CONNECTIONS_PER_MESSAGE, 1]
    assert [cid for cid, _ in unpacked(result.queued)] == others


def test_frames_too_big_for_one_message_are_split_and_every_connection_gets_every_part():
    big = [{"type": "message", "seq": n, "body": "x" * (60 * 1024)} for n in range(1, 6)]
    others = connections(60)
    frames = [(cid, frame) for cid in others for frame in big]

    result = plan(frames, answering=None, async_above=50)

    assert all(len(body.encode()) <= FRAMES_BYTES_PER_MESSAGE + 16 * 1024
               for body in result.queued)
    assert len(result.queued) > 1
    for cid in others:
        got = [frame["seq"] for to, frame in unpacked(result.queued) if to == cid]
        assert got == [1, 2, 3, 4, 5]


def test_a_queued_body_reads_back_what_was_planned_even_with_text_beyond_ascii():
    message = {"type": "message", "body": "héllo 👋 \"quoted\""}

    result = plan(addressed(message, connections(2)), answering=None, async_above=1)

    assert unpacked(result.queued) == addressed(message, connections(2))


@pytest.mark.parametrize("body", ["not json", "[]", '{"frames": [1], "connections": ["a"]}',
                                  '{"frames": [], "connections": [""]}', '{"frames": []}'])
def test_a_body_that_is_not_a_fanout_batch_is_refused(body):
    with pytest.raises(ValueError):
        read_batch(body)


def test_the_queue_is_named_after_the_stage():
    assert fanout.queue_name("prod") == "ephemera-prod-fanout"


# --- the SQS adapter ------------------------------------------------------------------------


def test_bodies_are_cut_into_calls_of_ten_entries_and_256_kib():
    small = ["x"] * (2 * BATCH_ENTRIES + 3)
    assert [len(call) for call in batches(small)] == [10, 10, 3]
    large = ["y" * (100 * 1024)] * 5
    calls = batches(large)
    assert all(sum(len(b) for b in call) <= BATCH_BYTES for call in calls)
    assert sum(len(call) for call in calls) == 5


@pytest.mark.parametrize(("url", "endpoint"), [
    ("https://sqs.eu-west-1.amazonaws.com/123456789012/ephemera-dev-fanout",
     "https://sqs.eu-west-1.amazonaws.com"),
    ("http://127.0.0.1:8000/local/sqs/000000000000/ephemera-local-fanout",
     "http://127.0.0.1:8000/local/sqs"),
])
def test_the_api_endpoint_is_the_queue_url_without_account_and_name(url, endpoint):
    assert endpoint_of(url) == endpoint


def test_a_url_that_names_no_queue_is_a_config_error():
    with pytest.raises(ConfigError):
        endpoint_of("https://sqs.us-east-1.amazonaws.com/")


@mock_aws
def test_every_body_sent_arrives_on_the_queue(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="ephemera-test-fanout")["QueueUrl"]
    bodies = [json.dumps({"frames": [], "connections": [f"c{n}"]}) for n in range(23)]

    SqsFanoutQueue(url).send(bodies)

    received = []
    while True:
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        if not reply.get("Messages"):
            break
        received += [message["Body"] for message in reply["Messages"]]
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
            for n, m in enumerate(reply["Messages"])])
    assert sorted(received) == sorted(bodies)


def test_a_group_send_reads_back_with_its_conversation_and_sender():
    frames = [{"type": "message", "seq": 1, "body": "hi"}]

    bodies = fanout.group_send_bodies(frames, "conv-1", "user-1")

    assert [read_batch(body) for body in bodies] == [
        fanout.GroupSend(frames, "conv-1", "user-1")]


def test_a_group_send_too_big_for_one_message_is_cut_by_frames():
    frames = [{"type": "message", "seq": n, "body": "x" * (60 * 1024)} for n in range(1, 6)]

    bodies = fanout.group_send_bodies(frames, "conv-1", "user-1")

    assert len(bodies) > 1
    assert [f["seq"] for body in bodies for f in read_batch(body).frames] == [1, 2, 3, 4, 5]


def test_queued_messages_that_expired_are_left_out_and_other_frames_kept():
    frames = [{"type": "message", "seq": 1, "expires_at": 100},
              {"type": "message", "seq": 2, "expires_at": 300},
              {"type": "expired", "conversation_id": "c", "ranges": [[1, 1]]}]

    assert fanout.unexpired(frames, now_ms=200) == frames[1:]
