"""Presence: online while any device is connected; frames only on first connect and last
disconnect; dead connections are dropped and never counted."""

from __future__ import annotations

import pytest

from chalicelib.services import presence
from chalicelib.services.context import Context
from chalicelib.services.conversations import list_for
from chalicelib.services.limits import NoLimits
from chalicelib.services.presence import CONNECTING_MS
from tests.integration.messaging_world import World
from tests.support.concurrency import run_in_threads
from tests.support.fakes import TEST_KEYS, RecordingPush


@pytest.fixture
def world(db, clock) -> World:
    push = RecordingPush()
    return World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS), push)


def presence_frames(world, caller):
    return [(f["user_id"], f["online"]) for f in world.received(caller, "presence")]


def test_the_first_device_announces_online_and_a_second_device_says_nothing(world):
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone = world.device(bob)

    world.device(alice)
    world.device(alice)

    assert presence_frames(world, bob_phone) == [(alice.id, True)]


def test_only_the_last_device_going_announces_offline(world, clock):
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone = world.device(bob)
    phone, laptop = world.device(alice), world.device(alice)
    world.forget_frames()

    world.disconnect(phone)
    assert presence_frames(world, bob_phone) == []
    clock.advance(seconds=3)
    world.disconnect(laptop)

    (frame,) = world.received(bob_phone, "presence")
    assert frame == {"type": "presence", "user_id": alice.id, "online": False,
                     "last_seen_at": clock.now_ms()}


def test_presence_goes_only_to_people_who_share_a_conversation(world):
    alice, bob, stranger = world.person(), world.person(), world.person()
    world.chat(alice, bob)
    bob_phone, stranger_phone = world.device(bob), world.device(stranger)

    world.device(alice)

    assert presence_frames(world, bob_phone) == [(alice.id, True)]
    assert presence_frames(world, stranger_phone) == []


def test_members_show_online_while_any_device_is_connected(world):
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    phone, laptop = world.device(alice), world.device(alice)

    def alice_online() -> bool:
        (view,) = list_for(bob.id, {}, world.ctx)["conversations"]
        return next(m["online"] for m in view["members"] if m["user_id"] == alice.id)

    assert alice_online() is True
    world.disconnect(phone)
    assert alice_online() is True
    world.disconnect(laptop)
    assert alice_online() is False


def test_a_connection_that_answers_gone_is_removed_and_not_counted(world, clock):
    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)
    bob_phone = world.device(bob)
    alice_phone = world.device(alice)
    world.push.gone.add(alice_phone.connection_id)
    world.forget_frames()
    clock.advance(ms=CONNECTING_MS + 1)  # long past its `$connect`

    world.send(bob_phone, chat, body="are you there?")

    assert world.count("connections") == 1
    assert presence_frames(world, bob_phone) == [(alice.id, False)]


def test_a_connection_still_connecting_that_answers_gone_is_kept(world, clock):
    """API Gateway answers 410 to pushes until a connection's `$connect` returns: a peer's
    presence push then must not make the server forget a socket that is about to open."""
    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)
    bob_phone = world.device(bob)
    alice_phone = world.device(alice)
    world.push.gone.add(alice_phone.connection_id)  # its handshake has not finished
    clock.advance(ms=CONNECTING_MS - 1)

    world.send(bob_phone, chat, body="are you there?")

    assert world.count("connections") == 2
    world.push.gone.clear()
    world.send(bob_phone, chat, body="and now?")
    assert world.last(alice_phone, "message")["body"] == "and now?"


def test_the_sweep_removes_connections_past_api_gateways_limits(world, clock):
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    idle = world.device(alice)
    clock.advance(seconds=500)
    bob_phone = world.device(bob)
    world.frame(bob_phone, "ping")
    world.forget_frames()
    clock.advance(seconds=101)  # alice's connection: 601 s without a frame

    removed = presence.sweep_stale_connections(idle_timeout_s=600, max_connection_s=7200,
                                               ctx=world.ctx)

    assert removed == 1
    assert world.push.disconnected == [idle.connection_id]
    assert presence_frames(world, bob_phone) == [(alice.id, False)]
    assert world.count("connections") == 1


def test_the_sweep_removes_connections_older_than_the_maximum(world, clock):
    alice = world.person()
    old = world.device(alice)
    for _ in range(25):  # busy all along: a ping every 5 minutes, for 2 h 5 min
        clock.advance(seconds=300)
        world.frame(old, "ping")

    removed = presence.sweep_stale_connections(idle_timeout_s=600, max_connection_s=7200,
                                               ctx=world.ctx)

    assert removed == 1
    assert world.count("connections") == 0


def test_racing_closes_of_the_last_connections_announce_offline_exactly_once(mysql_db, clock):
    """A $disconnect racing a 410 drop of the same socket, while the user's other socket also
    closes: whatever the interleaving, one offline frame."""
    push = RecordingPush()
    world = World(Context(db=mysql_db, push=push, clock=clock, limiter=NoLimits(),
                           keys=TEST_KEYS), push)
    watcher_person, person = world.person(), world.person()
    world.chat(watcher_person, person)
    watcher = world.device(watcher_person)
    for _ in range(15):
        phone, laptop = world.device(person), world.device(person)
        world.forget_frames()

        closing = [phone.connection_id, phone.connection_id, laptop.connection_id]
        run_in_threads(3, lambda i, ids=closing: presence.close_connection(ids[i], world.ctx))

        offline = [f for f in world.received(watcher, "presence") if not f["online"]]
        assert len(offline) == 1, offline


def test_a_busy_connection_is_never_swept_as_idle_however_short_the_idle_timeout(db, clock):
    """A frame refreshes the connection's activity well inside the idle timeout the sweep
    judges it by (3 s here, as in the end-to-end stack), not only once a minute."""
    push = RecordingPush()
    world = World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS,
                           touch_every_ms=1000), push)
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)

    for _ in range(6):  # a read every 1.5 s for 9 s
        clock.advance(ms=1500)
        world.frame(phone, "read", conversation_id=chat, seq=0)
        assert presence.sweep_stale_connections(idle_timeout_s=3, max_connection_s=7200,
                                                ctx=world.ctx) == 0
