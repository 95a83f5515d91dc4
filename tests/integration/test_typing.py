"""`typing` (PROTOCOL "WebSocket additions"): passed on to the other participants' live
connections, never stored. Not to the typist's own devices, not to members who have not
accepted, never across a block, and nothing at all from a typist who has not accepted. The
database is read, never written: not even the frame count or the connection's activity."""

from __future__ import annotations

import pytest

from chalicelib.services import account
from chalicelib.services import typing as typing_service
from chalicelib.services.context import Context
from chalicelib.services.limits import SlidingWindowLimiter, load_policies
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush


@pytest.fixture
def push() -> RecordingPush:
    return RecordingPush()


@pytest.fixture
def world(db, clock, push) -> World:
    # The real limiter: a counted frame would write its window, which the tests look for.
    limiter = SlidingWindowLimiter(db=db, clock=clock, policies=load_policies({}))
    return World(Context(db=db, push=push, clock=clock, limiter=limiter, keys=TEST_KEYS),
                 push)


def typing_frames(world: World, caller) -> list[dict]:
    return world.received(caller, "typing")


def snapshot(world: World) -> dict[str, list]:
    """Every row of every table, in a stable order."""

    def tables(txn) -> list[str]:
        if txn.engine.name == "sqlite":
            txn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            txn.execute("SHOW TABLES")
        return [next(iter(row.values())) for row in txn.fetchall()]

    names = world.ctx.db.run_read("t", tables)
    return {name: sorted(map(repr, world.rows(name))) for name in names}


@pytest.fixture
def pair(world):
    alice, bob = world.person(), world.person()
    alice_phone, alice_laptop = world.device(alice), world.device(alice)
    bob_phone, bob_laptop = world.device(bob), world.device(bob)
    chat = world.chat(alice, bob)
    world.forget_frames()
    return alice, bob, alice_phone, alice_laptop, bob_phone, bob_laptop, chat


def test_the_others_connections_get_typing_and_the_typists_own_do_not(world, pair, clock):
    alice, bob, alice_phone, alice_laptop, bob_phone, bob_laptop, chat = pair

    world.frame(alice_phone, "typing", conversation_id=chat, active=True, req="t")

    expected = {"type": "typing", "conversation_id": chat, "user_id": alice.id,
                "active": True, "at": clock.now_ms()}
    assert typing_frames(world, bob_phone) == [expected]
    assert typing_frames(world, bob_laptop) == [expected]
    assert world.received(alice_phone) == [] and world.received(alice_laptop) == []


def test_a_typing_frame_writes_nothing_at_all(world, pair, clock):
    alice, bob, alice_phone, alice_laptop, bob_phone, bob_laptop, chat = pair
    stranger = world.device(world.person())
    clock.advance(seconds=60)  # a touch of the connection's activity would be due
    world.sql("UPDATE connections SET silent = 1 WHERE id = %s", alice_phone.connection_id)
    before = snapshot(world)

    world.frame(alice_phone, "typing", conversation_id=chat, active=True)
    world.frame(alice_phone, "typing", conversation_id=chat, active=False)
    world.frame(alice_phone, "typing", conversation_id=chat, active="yes")  # refused
    world.frame(stranger, "typing", conversation_id=chat, active=True)  # refused

    assert len(typing_frames(world, bob_phone)) == 2
    assert snapshot(world) == before  # last_seen_at and silent included


def test_the_same_frames_counted_would_write(world, pair, clock):
    """The snapshot test can fail: an ordinary frame writes its count."""
    alice, bob, alice_phone, alice_laptop, bob_phone, bob_laptop, chat = pair
    before = snapshot(world)

    world.frame(alice_phone, "ping")

    assert snapshot(world)["rate_limit_windows"] != before["rate_limit_windows"]


def test_a_member_who_has_not_accepted_gets_no_typing(world):
    stranger, owner, friend = world.person(), world.person(), world.person()
    stranger_phone, owner_phone, friend_phone = (world.device(stranger), world.device(owner),
                                                 world.device(friend))
    group = world.chat(stranger, owner, friend, accepted=False)
    world.sql("UPDATE participants SET consent = 'accepted' WHERE user_id = %s", friend.id)
    world.forget_frames()

    world.frame(stranger_phone, "typing", conversation_id=group, active=True)

    assert typing_frames(world, friend_phone) != []
    assert typing_frames(world, owner_phone) == []


def test_a_typist_who_has_not_accepted_reaches_nobody(world):
    stranger, owner = world.person(), world.person()
    stranger_phone, owner_phone = world.device(stranger), world.device(owner)
    chat = world.chat(stranger, owner, accepted=False)
    world.forget_frames()

    world.frame(owner_phone, "typing", conversation_id=chat, active=True)

    assert typing_frames(world, stranger_phone) == []
    assert world.received(owner_phone, "error") == []


@pytest.mark.parametrize("who_blocks", ["listener", "typist"])
def test_no_typing_across_a_block_either_way(world, who_blocks):
    alice, bob, carol = world.person(), world.person(), world.person()
    alice_phone, bob_phone, carol_phone = (world.device(alice), world.device(bob),
                                           world.device(carol))
    group = world.chat(alice, bob, carol)
    if who_blocks == "listener":
        account.block(bob.id, {"user_id": alice.id}, world.ctx)
    else:
        account.block(alice.id, {"user_id": bob.id}, world.ctx)
    world.forget_frames()

    world.frame(alice_phone, "typing", conversation_id=group, active=True)

    assert typing_frames(world, bob_phone) == []
    assert typing_frames(world, carol_phone) != []


def test_the_throttle_passes_one_active_per_window(world, pair, clock):
    alice, bob, alice_phone, alice_laptop, bob_phone, bob_laptop, chat = pair

    for _ in range(3):
        world.frame(alice_phone, "typing", conversation_id=chat, active=True)
        clock.advance(ms=500)
    assert [f["active"] for f in typing_frames(world, bob_phone)] == [True]

    clock.advance(ms=typing_service.ACTIVE_EVERY_MS)
    world.frame(alice_phone, "typing", conversation_id=chat, active=True)
    world.frame(alice_phone, "typing", conversation_id=chat, active=False)
    world.frame(alice_phone, "typing", conversation_id=chat, active=False)
    clock.advance(ms=1)
    world.frame(alice_phone, "typing", conversation_id=chat, active=True)  # after a stop
    assert [f["active"] for f in typing_frames(world, bob_phone)] == [
        True, True, False, False, True]
    # Another device of the typist has its own window.
    world.frame(alice_laptop, "typing", conversation_id=chat, active=True)
    assert len(typing_frames(world, bob_phone)) == 6


def test_each_typing_carries_when_it_reached_the_server(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, bob_laptop, chat = pair

    world.frame(alice_phone, "typing", conversation_id=chat, active=True,
                received_at=1_800_000_000_123)

    assert typing_frames(world, bob_phone)[0]["at"] == 1_800_000_000_123


def test_a_start_overtaken_by_its_stop_is_not_passed_on(world, pair, clock):
    # API Gateway handles one connection's frames concurrently: the stop typed just after a
    # start can be handled first. The start, older, must not bring "typing…" back.
    alice, bob, alice_phone, alice_laptop, bob_phone, bob_laptop, chat = pair
    started, stopped = clock.now_ms(), clock.now_ms() + 40

    world.frame(alice_phone, "typing", conversation_id=chat, active=False,
                received_at=stopped)
    world.frame(alice_phone, "typing", conversation_id=chat, active=True,
                received_at=started)
    world.frame(alice_phone, "typing", conversation_id=chat, active=True,
                received_at=stopped)  # the same instant as the stop: the stop is newer

    assert [(f["active"], f["at"]) for f in typing_frames(world, bob_phone)] == [
        (False, stopped)]
    world.frame(alice_phone, "typing", conversation_id=chat, active=True,
                received_at=stopped + 1)  # typing again after the stop
    assert [f["active"] for f in typing_frames(world, bob_phone)] == [False, True]


def test_a_start_whose_stop_passed_on_while_it_read_is_dropped(clock):
    memory = typing_service._Memory()
    key = ("c1", "chat")
    now = clock.now_ms()
    assert not memory.held_back(key, True, now)  # the start checks, then reads...
    assert not memory.held_back(key, False, now + 5)  # ...while its stop checks,
    assert memory.record(key, False, now + 5)  # reads and is passed on first
    assert not memory.record(key, True, now)  # so the start is not


def test_too_many_typing_frames_are_rate_limited_in_memory(world, pair, clock):
    alice, bob, alice_phone, alice_laptop, bob_phone, bob_laptop, chat = pair
    counted = world.rows("rate_limit_windows")

    for _ in range(typing_service.BUDGET_FRAMES):
        world.frame(alice_phone, "typing", conversation_id=chat, active=False)
    world.frame(alice_phone, "typing", conversation_id=chat, active=False, req="over")

    error = world.last(alice_phone, "error")
    assert (error["code"], error["req"]) == ("rate_limited", "over")
    assert 0 < error["retry_after_ms"] <= typing_service.BUDGET_WINDOW_MS
    assert len(typing_frames(world, bob_phone)) == typing_service.BUDGET_FRAMES
    assert world.rows("rate_limit_windows") == counted  # nothing counted in the database
    clock.advance(ms=typing_service.BUDGET_WINDOW_MS)
    world.frame(alice_phone, "typing", conversation_id=chat, active=False)
    assert len(typing_frames(world, bob_phone)) == typing_service.BUDGET_FRAMES + 1


@pytest.mark.parametrize("fields", [
    {"conversation_id": "x", "active": "true"},
    {"conversation_id": "x", "active": 1},
    {"conversation_id": "x"},
    {"active": True},
    {"conversation_id": 7, "active": True},
])
def test_bad_input_is_bad_request(world, pair, fields):
    alice, bob, alice_phone, alice_laptop, bob_phone, bob_laptop, chat = pair
    fields = {**fields, "conversation_id": chat} if fields.get("conversation_id") == "x" \
        else fields

    world.frame(alice_phone, "typing", **fields)

    assert world.last(alice_phone, "error")["code"] == "bad_request"
    assert typing_frames(world, bob_phone) == []


def test_a_non_participant_gets_not_found(world, pair):
    alice, bob, alice_phone, alice_laptop, bob_phone, bob_laptop, chat = pair
    stranger = world.device(world.person())

    world.frame(stranger, "typing", conversation_id=chat, active=True)
    world.frame(stranger, "typing", conversation_id=chat, active=True)  # not throttled away
    world.frame(stranger, "typing", conversation_id="no-such-chat", active=False)

    assert [e["code"] for e in world.received(stranger, "error")] == ["not_found"] * 3
    assert typing_frames(world, bob_phone) == []


def test_a_gone_connection_is_left_to_the_sweep(world, pair, push):
    alice, bob, alice_phone, alice_laptop, bob_phone, bob_laptop, chat = pair
    push.gone.add(bob_phone.connection_id)

    world.frame(alice_phone, "typing", conversation_id=chat, active=True)

    assert typing_frames(world, bob_laptop) != []
    assert bob_phone.connection_id in {row["id"] for row in world.rows("connections")}


def test_the_memory_stays_bounded(monkeypatch, clock):
    memory = typing_service._Memory()
    monkeypatch.setattr(typing_service, "MAX_ENTRIES", 50)
    for n in range(200):  # all within one window: nothing ages out
        memory.record((f"c{n}", "chat"), True, clock.now_ms())
        memory.spend(f"c{n}", clock.now_ms())
    assert len(memory.passed) == 50 and len(memory.budgets) == 50
    clock.advance(ms=typing_service.BUDGET_WINDOW_MS + 1)
    memory.record(("late", "chat"), True, clock.now_ms())
    memory.spend("late", clock.now_ms())
    assert (len(memory.passed), len(memory.budgets)) == (1, 1)  # the old ones aged out
