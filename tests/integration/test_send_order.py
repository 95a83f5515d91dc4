"""The sender's order (PROTOCOL "Keeping order"): the batch form of `send` stores a backlog in
the order written, in one transaction, and answers each message with its own `sent`; and the
database round trips each action costs stay within the bounds (≤ 5 per send, ≤ 3 per ack and
read), counted on the wire to MariaDB."""

from __future__ import annotations

import threading
import time

import pytest

from chalicelib.ids import new_id
from chalicelib.services.context import Context
from chalicelib.services.limits import NoLimits, SlidingWindowLimiter, load_policies
from chalicelib.services.messaging import MAX_BATCH
from tests.integration.messaging_world import World
from tests.support.concurrency import run_in_threads
from tests.support.fakes import TEST_KEYS, RecordingPush
from tests.support.round_trips import counting_round_trips


@pytest.fixture
def push() -> RecordingPush:
    return RecordingPush()


@pytest.fixture
def world(db, clock, push) -> World:
    return World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS),
                 push)


def batch(*bodies: str, ids: list[str] | None = None) -> list[dict[str, str]]:
    ids = ids or [new_id() for _ in bodies]
    return [{"client_msg_id": cid, "body": body} for cid, body in zip(ids, bodies, strict=True)]


def stored_bodies(world: World, chat: str) -> list[str]:
    return [row["body"] for row in sorted(
        (r for r in world.rows("messages") if r["conversation_id"] == chat),
        key=lambda r: r["seq"])]


def test_a_batch_is_stored_in_the_order_written_with_consecutive_seqs(world):
    alice, bob = world.person(), world.person()
    phone, bob_phone = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    world.send(phone, chat, body="before")
    world.forget_frames()

    world.frame(phone, "send", conversation_id=chat, messages=batch("m0", "m1", "m2", "m3"),
                req="flush-1")

    sent = world.received(phone, "sent")
    assert [s["seq"] for s in sent] == [2, 3, 4, 5]
    assert {s["req"] for s in sent} == {"flush-1"} and not any(s["duplicate"] for s in sent)
    assert [m["body"] for m in world.received(bob_phone, "message")] == ["m0", "m1", "m2", "m3"]
    assert [m["seq"] for m in world.received(bob_phone, "message")] == [2, 3, 4, 5]
    assert stored_bodies(world, chat) == ["before", "m0", "m1", "m2", "m3"]


def test_each_message_of_a_batch_is_answered_by_its_own_sent(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    messages = batch("one", "two")
    world.forget_frames()

    world.frame(phone, "send", conversation_id=chat, messages=messages)

    assert [s["client_msg_id"] for s in world.received(phone, "sent")] == [
        m["client_msg_id"] for m in messages]


def test_a_retried_batch_answers_the_stored_ones_duplicate_and_stores_the_rest_after(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    first_two = batch("a", "b")
    world.frame(phone, "send", conversation_id=chat, messages=first_two)
    world.forget_frames()

    world.frame(phone, "send", conversation_id=chat, messages=first_two + batch("c"))

    answers = world.received(phone, "sent")
    assert [(s["seq"], s["duplicate"]) for s in answers] == [(1, True), (2, True), (3, False)]
    assert stored_bodies(world, chat) == ["a", "b", "c"]


def test_one_bad_message_refuses_the_whole_batch_and_stores_nothing(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    world.forget_frames()

    world.frame(phone, "send", conversation_id=chat, req=7,
                messages=batch("fine") + [{"client_msg_id": "bad id!", "body": "x"}])

    (error,) = world.received(phone, "error")
    assert (error["code"], error["req"]) == ("bad_request", 7)
    assert world.count("messages") == 0 and world.count("idempotency_keys") == 0


@pytest.mark.parametrize("messages", [
    [],
    "not a list",
    ["not an object"],
    [{"client_msg_id": "same-id-01", "body": "x"}, {"client_msg_id": "same-id-01", "body": "y"}],
    [{"client_msg_id": f"many-ids-{i:03d}", "body": "x"} for i in range(MAX_BATCH + 1)],
])
def test_a_malformed_batch_is_bad_request(world, messages):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    world.forget_frames()

    world.frame(phone, "send", conversation_id=chat, messages=messages)

    assert [e["code"] for e in world.received(phone, "error")] == ["bad_request"]
    assert world.count("messages") == 0


def test_a_batch_cannot_also_carry_the_single_form(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    world.forget_frames()

    world.frame(phone, "send", conversation_id=chat, messages=batch("x"), body="y",
                client_msg_id=new_id())

    assert [e["code"] for e in world.received(phone, "error")] == ["bad_request"]


def test_reusing_a_client_msg_id_for_another_body_in_a_batch_is_conflict(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    used = new_id()
    world.send(phone, chat, body="original", client_msg_id=used)
    world.forget_frames()

    world.frame(phone, "send", conversation_id=chat,
                messages=batch("new") + batch("changed", ids=[used]))

    (error,) = world.received(phone, "error")
    assert (error["code"], error["client_msg_id"]) == ("conflict", used)
    assert stored_bodies(world, chat) == ["original"]


def test_concurrent_copies_of_one_batch_store_it_once_in_order(world):
    alice, bob = world.person(), world.person()
    phone, bob_phone = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    messages = batch(*(f"m{i}" for i in range(8)))
    world.forget_frames()

    run_in_threads(4, lambda _: world.frame(phone, "send", conversation_id=chat,
                                            messages=messages))

    assert stored_bodies(world, chat) == [f"m{i}" for i in range(8)]
    answers = world.received(phone, "sent")
    assert len(answers) == 32 and {a["seq"] for a in answers} == set(range(1, 9))
    assert [m["seq"] for m in world.received(bob_phone, "message")] == list(range(1, 9))


def waiting_on_the_row(mysql_server, database: str, count: int) -> None:
    """Until `count` sends of the database are stuck on the conversation's row (held by the
    test) allocating their seqs: no timing assumed."""
    watcher = mysql_server.connect(database)
    try:
        with watcher.cursor() as cur:
            for _ in range(1000):
                cur.execute("SELECT COUNT(*) AS n FROM information_schema.processlist "
                            "WHERE db = %s AND info LIKE 'UPDATE conversations%%'", (database,))
                if cur.fetchone()["n"] >= count:
                    return
                time.sleep(0.01)
        raise AssertionError(f"{count} sends never waited for the conversation's row")
    finally:
        watcher.close()


def test_a_retry_batch_racing_its_first_copy_stores_the_new_message_too(
        mysql_db, mysql_server, mysql_database, clock, push):
    """A device gave up on a socket whose `send` of x was still being served, and sends x
    again on a new one, batched with y written meanwhile. The first copy wins x; the batch
    must still store y (after x, as written) and answer x as a duplicate, not refuse both."""
    world = World(Context(db=mysql_db, push=push, clock=clock, limiter=NoLimits(),
                          keys=TEST_KEYS), push)
    alice, bob = world.person(), world.person()
    old_socket = world.device(alice)
    new_socket = world.another_socket(old_socket)
    chat = world.chat(alice, bob)
    world.forget_frames()
    x, y = batch("x", "y")
    holder = mysql_server.connect(mysql_database)  # holds the conversation's row: both wait
    copies = [threading.Thread(target=world.frame, args=(old_socket, "send"),
                               kwargs={"conversation_id": chat, "req": "old", **x}),
              threading.Thread(target=world.frame, args=(new_socket, "send"),
                               kwargs={"conversation_id": chat, "req": "new",
                                       "messages": [x, y]})]
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT last_seq FROM conversations WHERE id = %s FOR UPDATE", (chat,))
        for waiting, copy in enumerate(copies, start=1):
            copy.start()  # the first copy queues first for the row, so it goes first
            waiting_on_the_row(mysql_server, mysql_database, waiting)
    finally:
        holder.commit()
        holder.close()
        for copy in copies:
            if copy.is_alive():
                copy.join()

    assert world.received(new_socket, "error") == []
    assert stored_bodies(world, chat) == ["x", "y"]
    (original,) = world.received(old_socket, "sent")
    again_x, again_y = world.received(new_socket, "sent")
    assert (original["seq"], original["duplicate"]) == (1, False)
    assert (again_x["message_id"], again_x["duplicate"]) == (original["message_id"], True)
    assert (again_y["client_msg_id"], again_y["seq"], again_y["duplicate"]) == \
        (y["client_msg_id"], 2, False)


@pytest.mark.parametrize("action", ["ack", "read"])
def test_a_receipt_does_not_wait_for_a_send_holding_the_conversation(
        mysql_db, mysql_server, mysql_database, clock, push, action):
    """A send holds its conversation's row from its seq until its COMMIT; the receiver's
    cursors are the receiver's own row, so an `ack` or `read` meanwhile goes through."""
    world = World(Context(db=mysql_db, push=push, clock=clock, limiter=NoLimits(),
                          keys=TEST_KEYS), push)
    alice, bob = world.person(), world.person()
    phone, bob_phone = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    world.send(phone, chat, body="one")
    world.forget_frames()
    holder = mysql_server.connect(mysql_database)
    receipt = threading.Thread(target=world.frame, args=(bob_phone, action),
                               kwargs={"conversation_id": chat, "seq": 1})
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("UPDATE conversations SET activity_at = activity_at + 1 WHERE id = %s",
                        (chat,))
        receipt.start()
        receipt.join(timeout=10)
        finished_while_held = not receipt.is_alive()
    finally:
        holder.rollback()
        holder.close()
        receipt.join()

    assert finished_while_held
    assert world.last(phone, "receipt")["seq"] == 1


def test_a_batch_over_the_burst_limit_is_rate_limited_and_stores_nothing(db, clock, push):
    limiter = SlidingWindowLimiter(db=db, clock=clock, policies=load_policies(
        {"RATE_SEND_BURST_PER_USER": "5/10"}))
    world = World(Context(db=db, push=push, clock=clock, limiter=limiter, keys=TEST_KEYS),
                  push)
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    world.send(phone, chat, body="first")
    world.forget_frames()

    world.frame(phone, "send", conversation_id=chat, messages=batch(*"abcde"))

    (error,) = world.received(phone, "error")
    assert error["code"] == "rate_limited" and error["retry_after_ms"] > 0
    assert stored_bodies(world, chat) == ["first"]


# --- round trips -------------------------------------------------------------------------


@pytest.fixture
def limited_world(mysql_db, clock, push) -> World:
    """On MariaDB, with the real limiter: every send and cursor pays for its limits."""
    limiter = SlidingWindowLimiter(db=mysql_db, clock=clock, policies=load_policies({}))
    return World(Context(db=mysql_db, push=push, clock=clock, limiter=limiter,
                          keys=TEST_KEYS), push)


def round_trips_of(world: World, act) -> int:
    with counting_round_trips() as trips:
        act()
    return trips.total


def test_a_send_costs_at_most_five_round_trips_limits_included(limited_world):
    world = limited_world
    alice, bob = world.person(), world.person()
    phone, _ = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    world.send(phone, chat)  # the connections exist: their handshakes are not counted

    trips = round_trips_of(world, lambda: world.send(phone, chat, body="counted"))

    assert world.last(phone, "sent")["duplicate"] is False
    assert trips <= 5


def test_a_batch_of_ten_costs_no_more_round_trips_than_one_send(limited_world):
    world = limited_world
    alice, bob = world.person(), world.person()
    phone, _ = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    world.send(phone, chat)

    one = round_trips_of(world, lambda: world.send(phone, chat, body="one"))
    ten = round_trips_of(world, lambda: world.frame(phone, "send", conversation_id=chat,
                                                    messages=batch(*"0123456789")))

    assert len(world.received(phone, "sent")) == 12
    assert ten <= one <= 5


def test_a_fresh_send_costs_three_round_trips_and_a_retry_at_most_five(limited_world):
    """A fresh send's read only counts earlier sends under its ids; a retry reads their keys
    in a round trip of its own, and stays within the bound."""
    world = limited_world
    alice, bob = world.person(), world.person()
    phone, _ = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    world.send(phone, chat)

    fresh = round_trips_of(world, lambda: world.frame(phone, "send", conversation_id=chat,
                                                      client_msg_id="retried-0001", body="x"))
    retry = round_trips_of(world, lambda: world.frame(phone, "send", conversation_id=chat,
                                                      client_msg_id="retried-0001", body="x"))

    first, again = world.received(phone, "sent")[-2:]
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["message_id"] == first["message_id"] and again["seq"] == first["seq"]
    assert fresh == 3
    assert retry <= 5


@pytest.mark.parametrize("action", ["ack", "read"])
def test_an_ack_or_a_read_costs_two_round_trips_its_caller_read_included(limited_world, action):
    world = limited_world
    alice, bob = world.person(), world.person()
    phone, bob_phone = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    for body in ("one", "two", "three"):
        world.send(phone, chat, body=body)
    world.frame(bob_phone, action, conversation_id=chat, seq=1)
    world.forget_frames()

    trips = round_trips_of(world, lambda: world.frame(bob_phone, action, conversation_id=chat,
                                                      seq=3))

    receipt = world.last(phone, "receipt")
    assert (receipt["user_id"], receipt["seq"]) == (bob.id, 3)
    assert trips == 2
