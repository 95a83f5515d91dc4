"""The capacity model (bench/capacity.py): its arithmetic on hand-checked cases, each quota
flagged when exceeded and not before, the first hit, monotonicity in users, and the tables in
docs/SCALING.md matching what the model renders."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench import capacity
from bench.capacity import (
    GIB,
    PROPOSED,
    RECEIPTS_TO_ALL,
    Audience,
    Deployment,
    Design,
    Workload,
    estimate,
    fan_out,
    first_hit,
    load_at,
    message_work,
)

# A world simple enough to check by hand: one device each, always online (so the peak cannot
# put more devices online), one session a day, 1:1 chats only (so no big group is ever shown
# and nobody refreshes the conversation list for one).
SIMPLE = Workload(daily_users=10_000, devices_per_user=1, group_mix=((2, 1.0),),
                  online_hours_per_device=24, sessions_per_device=1, big_group_shown_share=0)
# Nothing is ever hit in this deployment; each test lowers the one limit it is about.
ROOMY = Deployment(writer_max_connections=1_000, proxy_max_connections_percent=1e12,
                   writer_transactions_per_s=1e12, storage_gib=1e12,
                   new_connections_per_s=1e12, account_requests_per_s=1e12,
                   lambda_concurrency=1e12)
LIMIT_FIELDS = {  # quota -> (Deployment field, the field's value per unit of the limit)
    "new_connections": ("new_connections_per_s", 1.0),
    "account_requests": ("account_requests_per_s", 1.0),
    "lambda_concurrency": ("lambda_concurrency", 1.0),
    "proxy_connections": ("proxy_max_connections_percent", 100 / 1_000),
    "writer_transactions": ("writer_transactions_per_s", 1.0),
    "storage": ("storage_gib", 1 / GIB),
}


def with_limit(quota: str, limit: float) -> Deployment:
    name, per_unit = LIMIT_FIELDS[quota]
    return replace(ROOMY, **{name: limit * per_unit})


# --- arithmetic -------------------------------------------------------------------------------


def test_sends_per_second_are_daily_users_times_messages_over_a_day_times_the_peak():
    # 10,000 daily users x 50 messages a day / 86,400 s = 5.787 msg/s; x peak 3 = 17.36 msg/s
    e = estimate(Workload(daily_users=10_000))

    assert e.average.sends_per_s == pytest.approx(5.787, abs=1e-3)
    assert e.peak.sends_per_s == pytest.approx(17.361, abs=1e-3)


def test_connections_and_new_connections_follow_online_hours_and_the_two_hour_limit():
    # 10,000 users x 1.5 devices x 3 h / 24 h online = 1,875 sockets; at peak 3 x 3 h / 24 h
    # = 0.375 of devices: 5,625. Six 30-minute sessions a day, each under API Gateway's 2 h:
    # 6 connects per device: 15,000 x 6 / 86,400 s = 1.042/s, x 3 = 3.125/s at peak.
    e = estimate(Workload(daily_users=10_000))

    assert e.average.connections == pytest.approx(1_875)
    assert e.peak.connections == pytest.approx(5_625)
    assert e.average.new_connections_per_s == pytest.approx(1.0417, abs=1e-4)
    assert e.peak.new_connections_per_s == pytest.approx(3.125)


def test_an_always_online_device_connects_twelve_times_a_day():
    # API Gateway closes every connection after 2 hours: 24 h / 2 h = 12 connects a day.
    assert capacity.connects_per_device_per_day(SIMPLE) == 12
    # 10,000 devices x 12 / 86,400 s = 1.389/s, x 3 = 4.167/s at peak
    assert load_at(SIMPLE, Design(), 3.0).new_connections_per_s == pytest.approx(4.1667, abs=1e-4)


def test_one_direct_message_costs_what_the_hand_count_says():
    # One device each, online: the message reaches 1 connection. The send: 1 frame in,
    # `sent` + `message` = 2 pushes, 1 invocation, 1 transaction, 30 ms + 2 x 10/8 ms billed.
    # The receiver's ack: 1 frame, 1 invocation, 1 transaction, 1 `delivered` receipt push.
    # Half a read (0.5 a receiving user): each a frame, invocation and transaction, a `read`
    # receipt to the sender and `unread` to the reader's own connection: 2 pushes.
    # A quarter of an `expired` frame to 2 connections: 0.5 push; deletes 1/2,000 + 1/1,000.
    parts = message_work(Audience(members=2, devices=1, online=1.0), SIMPLE, Design())
    total = sum(parts.values(), capacity.Work())

    assert total.frames_in == pytest.approx(2.5)
    assert total.pushes == pytest.approx(2 + 1 + 0.5 * 2 + 0.5)
    assert total.invocations == pytest.approx(2.5)
    assert total.write_tx == pytest.approx(2.5 + 1 / 2_000 + 1 / 1_000)
    # 0.0325 (send) + 0.03125 (ack) + 0.5 x 0.0325 (read) + 0.5 x 0.00125 (expired) = 0.080625 s
    assert total.lambda_s == pytest.approx(0.080625)
    assert total.sqs_requests == 0


def test_the_peak_of_a_simple_world_adds_up_by_hand():
    # 17.361 msg/s x 4.5 pushes = 78.13; 4.167 connects/s x (1 `sync` reply + 40 presence
    # pushes: online and offline to 20 contacts' one device) = 170.83; 10,000 sockets / 60 s =
    # 166.67 pongs. @connections: 78.13 + 170.83 + 166.67 = 415.63/s.
    peak = load_at(SIMPLE, Design(), 3.0)

    assert peak.work.pushes == pytest.approx(415.625, abs=0.01)
    # writes: 17.361 x 2.5015 + 4.167 x 4 (ticket, $connect, sync, $disconnect) + 166.67 pings
    assert peak.work.write_tx == pytest.approx(226.762, abs=0.01)
    # Lambda concurrency = billed s per s: 17.361 x 0.080625 + 4.167 x (5 x 0.030 + 41 x
    # 0.00125) + 166.67 x 0.03125 = 1.400 + 0.839 + 5.208 = 7.447
    assert peak.lambda_concurrency == pytest.approx(7.4466, abs=1e-3)
    # API Gateway requests: frames (43.40 + 4.17 + 166.67) + pushes 415.63 + REST 8.33
    # (ticket and conversation list) + connects 4.17 = 642.36
    assert peak.work.api_requests == pytest.approx(642.36, abs=0.01)


@pytest.mark.parametrize(("ttl_s", "messages", "keys"), [
    (86_400, 500_000, 500_000),  # 5.787 msg/s x 86,400 s, keys kept max(24 h, TTL)
    (3_600, 20_833, 500_000),  # a 1-hour TTL: messages 5.787 x 3,600; keys still 24 h
    (7 * 86_400, 3_500_000, 3_500_000),  # a week: both 5.787 x 604,800
])
def test_rows_held_are_the_send_rate_times_how_long_each_row_lives(ttl_s, messages, keys):
    rows = estimate(Workload(daily_users=10_000, ttl_s=ttl_s)).rows

    assert rows.messages == pytest.approx(messages, abs=1)
    assert rows.idempotency_keys == pytest.approx(keys, abs=1)


@pytest.mark.parametrize(("connections", "sqs_messages", "sqs_requests"), [
    (51, 1, 1 + 2),  # one SQS message: one SendMessageBatch, then a receive and a delete
    (401, 3, 1 + 6),  # 200 connections a message: 3 messages, still one batch call
    (2_001, 11, 2 + 22),  # 11 messages: two batch calls of at most 10
])
def test_fan_out_above_fifty_connections_goes_through_sqs_in_batches_of_two_hundred(
        connections, sqs_messages, sqs_requests):
    work = fan_out(connections, Design())

    assert work.invocations == sqs_messages  # one worker invocation per SQS message
    assert work.sqs_requests == sqs_requests
    assert work.pushes == connections


def test_receipts_to_more_than_fifty_connections_take_the_queue_too():
    # A group of 50 (at the cap, so receipts go to every member), two devices each, all online:
    # 99 connections get the message and ack it; 49 users' delivered cursors move, each with a
    # `delivered` receipt to the 48 others' 2 devices and the sender's 2 = 98 connections > 50:
    # 1 SQS message (one SendMessageBatch, a receive, a delete) and 1 worker per receipt.
    parts = message_work(Audience(members=50, devices=2, online=1.0), SIMPLE, Design())

    assert parts["ack"].invocations == pytest.approx(99 + 49 * 1)  # acks + queue workers
    assert parts["ack"].pushes == pytest.approx(49 * 98)  # 4,802
    assert parts["ack"].sqs_requests == pytest.approx(49 * 3)


def test_big_group_members_ack_and_read_without_pushing_receipts_to_each_other():
    # A group of 500 (over PRESENCE_PUSH_MAX_MEMBERS = 50), one device each, all online.
    # The send: 1 frame, `sent` + 499 `message` pushes; 499 > 50 targets take the queue:
    #   ceil(499 / 200) = 3 SQS messages, 1 SendMessageBatch + 3 receives + 3 deletes = 7
    #   requests; invocations: the send + 3 workers = 4; 1 transaction.
    # The acks: 499 frames, invocations and transactions, no receipt pushed.
    # The reads: 0.5 x 499 = 249.5 frames, invocations and transactions, each pushing only
    #   `unread` to the reader's own 1 connection: 249.5 pushes.
    # The `expired` share, 1/4 of a frame to 500 connections: 125 pushes; 3 SQS messages,
    #   1 batch call + 6 = 7 requests and 3 workers, a quarter: 1.75 and 0.75.
    parts = message_work(Audience(members=500, devices=1, online=1.0), SIMPLE, Design())
    total = sum(parts.values(), capacity.Work())

    assert parts["ack"].pushes == 0
    assert parts["read"].pushes == pytest.approx(249.5)
    assert total.pushes == pytest.approx(500 + 249.5 + 125)  # 874.5
    assert total.frames_in == pytest.approx(1 + 499 + 249.5)
    assert total.invocations == pytest.approx(4 + 499 + 249.5 + 0.75)  # 753.25
    assert total.write_tx == pytest.approx(1 + 499 + 249.5 + 1 / 2_000 + 1 / 1_000)
    assert total.sqs_requests == pytest.approx(7 + 1.75)


def test_before_the_receipt_rule_every_ack_in_a_big_group_pushed_to_every_member():
    # The same group of 500 with receipts to every member: each of the 499 acks moves a
    # cursor and pushes `delivered` to the 499 others' connections: 3 SQS messages each.
    parts = message_work(Audience(members=500, devices=1, online=1.0), SIMPLE, RECEIPTS_TO_ALL)

    assert parts["ack"].invocations == pytest.approx(499 + 499 * 3)  # acks + queue workers
    assert parts["ack"].pushes == pytest.approx(499 * 499)


def test_fan_out_to_fifty_connections_stays_inside_the_send():
    work = fan_out(50, Design())

    assert (work.pushes, work.invocations, work.sqs_requests) == (50, 0, 0)


def test_receipts_to_every_member_make_a_group_message_cost_grow_with_the_square_of_its_size():
    def pushes(members: int, design: Design) -> float:
        audience = Audience(members, devices=1, online=1.0)
        return sum(message_work(audience, Workload(daily_users=1), design).values(),
                   capacity.Work()).pushes

    # 10 times the members: receipts to all about 100 times the pushes, to the sender only
    # about 10.
    assert pushes(500, RECEIPTS_TO_ALL) / pushes(50, RECEIPTS_TO_ALL) > 90
    assert pushes(500, PROPOSED) / pushes(50, PROPOSED) < 12
    # As built, above the cap twice the members make twice the pushes: 500 members 874.5
    # (the big-group test above); 250 members 250 (send) + 124.5 (unread) + 62.5 (expired) = 437.
    assert pushes(250, Design()) == pytest.approx(437)
    assert pushes(500, Design()) / pushes(250, Design()) == pytest.approx(874.5 / 437)


def test_a_device_showing_a_big_group_rereads_the_conversation_list_every_thirty_seconds():
    # 10,000 daily users at peak: 5,625 sockets, a quarter of them showing a group of more than
    # 50: 1,406.25 / 30 s = 46.875 GET /conversations a second, each an invocation of 30 ms
    # billed (1.406 executions) and no write.
    refresh = load_at(Workload(daily_users=10_000), Design(), 3.0).parts["refresh"]

    assert refresh.rest == pytest.approx(46.875)
    assert refresh.invocations == pytest.approx(46.875)
    assert refresh.lambda_s == pytest.approx(1.40625)
    assert (refresh.write_tx, refresh.pushes) == (0, 0)


# --- quotas -----------------------------------------------------------------------------------


@pytest.mark.parametrize("quota", list(LIMIT_FIELDS))
def test_each_quota_is_hit_when_the_peak_exceeds_it_and_not_before(quota):
    demand = capacity.demand(quota, estimate(SIMPLE, deployment=ROOMY).peak,
                             estimate(SIMPLE, deployment=ROOMY).rows)

    just_enough = estimate(SIMPLE, deployment=with_limit(quota, demand * 1.001))
    too_little = estimate(SIMPLE, deployment=with_limit(quota, demand * 0.999))

    assert just_enough.first_hit == "none"
    assert too_little.first_hit == quota
    assert too_little.headroom[quota] == pytest.approx(0.999)


def test_the_first_hit_is_the_quota_with_the_least_headroom():
    peak = estimate(SIMPLE, deployment=ROOMY).peak
    lambda_demand, writes = peak.lambda_concurrency, peak.work.write_tx
    lambda_worse = replace(with_limit("lambda_concurrency", lambda_demand * 0.5),
                           writer_transactions_per_s=writes * 0.8)
    writer_worse = replace(with_limit("lambda_concurrency", lambda_demand * 0.8),
                           writer_transactions_per_s=writes * 0.5)

    assert estimate(SIMPLE, deployment=lambda_worse).first_hit == "lambda_concurrency"
    assert estimate(SIMPLE, deployment=writer_worse).first_hit == "writer_transactions"


def test_a_quota_exactly_met_is_not_hit():
    assert first_hit({"a": 1.0, "b": 3.0}) == "none"
    assert first_hit({"a": 1.5, "b": 0.7, "c": 0.2}) == "c"


def test_every_demand_grows_and_every_headroom_shrinks_with_daily_users():
    estimates = [estimate(Workload(daily_users=users))
                 for users in (1_000, 10_000, 100_000, 1_000_000, 10_000_000)]

    for smaller, bigger in zip(estimates, estimates[1:], strict=False):
        assert bigger.peak.work.pushes > smaller.peak.work.pushes
        assert bigger.peak.work.write_tx > smaller.peak.work.write_tx
        assert bigger.peak.lambda_concurrency > smaller.peak.lambda_concurrency
        assert bigger.peak.new_connections_per_s > smaller.peak.new_connections_per_s
        assert bigger.rows.bytes > smaller.rows.bytes
        assert bigger.monthly_total > smaller.monthly_total
        assert all(bigger.headroom[key] < smaller.headroom[key] for key in smaller.headroom)


def test_monthly_cost_prices_each_meter_as_published():
    # 2 billion WebSocket messages: the first billion at $1.00 a million, the rest at $0.80.
    assert capacity.tiered(2e9, capacity.Prices().websocket_message_tiers) == pytest.approx(1_800)
    # 1 million Lambda GB-seconds at $0.0000166667 = $16.67
    assert 1e6 * capacity.Prices().lambda_gb_second == pytest.approx(16.67, abs=0.01)


# --- the document -----------------------------------------------------------------------------


def test_the_tables_in_docs_scaling_md_are_what_the_model_renders():
    text = capacity.DOC_PATH.read_text(encoding="utf-8")

    assert capacity.doc_tables(text) == capacity.render_doc_tables(), (
        "docs/SCALING.md is stale: run python -m bench.capacity --write-doc")


def test_docs_scaling_md_cites_every_quota_s_source():
    text = capacity.DOC_PATH.read_text(encoding="utf-8")

    for quota in capacity.quotas(Deployment()):
        for source in quota.source.split(" ; "):
            assert source.split(" (")[0] in text, f"{quota.key}: {source} is not cited"


def test_check_doc_fails_on_a_stale_table(tmp_path, monkeypatch):
    stale = tmp_path / "SCALING.md"
    stale.write_text(f"{capacity.BEGIN_MARKER}\n| old |\n{capacity.END_MARKER}\n",
                     encoding="utf-8")
    monkeypatch.setattr(capacity, "DOC_PATH", stale)

    assert capacity.main(["--check-doc"]) == 1
    assert capacity.main(["--write-doc"]) == 0
    assert capacity.main(["--check-doc"]) == 0
