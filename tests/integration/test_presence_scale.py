"""Presence that scales with group size (issue 24): `presence` frames go only to 1:1 partners
and to groups of at most PRESENCE_PUSH_MAX_MEMBERS members, so what a connect or a disconnect
costs does not grow with the size of the groups the user is in. Members of bigger groups read
presence from GET /conversations (`presence_pushed: false` tells clients to refresh it).

The limit is set to 3 here, so that groups of 10 and 100 are both "big"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.config import Config
from chalicelib.services import conversations, presence
from chalicelib.services.context import Caller, Context
from chalicelib.services.limits import NoLimits
from chalicelib.storage import connections
from chalicelib.storage.database import Database, Transaction
from tests.integration.messaging_world import Person, World
from tests.support.fakes import TEST_KEYS, RecordingPush
from tests.support.round_trips import rows_read

LIMIT = 3


def world_on(db: Database, clock, *, limit: int = LIMIT) -> World:
    push = RecordingPush()
    return World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS,
                         presence_push_max_members=limit), push)


@pytest.fixture
def world(db, clock) -> World:
    return world_on(db, clock)


def presence_of(world: World, watcher: Caller, person: Person) -> list[bool]:
    return [f["online"] for f in world.received(watcher, "presence")
            if f["user_id"] == person.id]


def group_of(world: World, owner: Person, size: int) -> tuple[str, list[Caller]]:
    """A group of `size` members (the owner among them), every other member connected once."""
    others = [world.person() for _ in range(size - 1)]
    chat = world.chat(owner, *others)
    return chat, [world.device(other) for other in others]


def listed(world: World, person: Person, conversation_id: str) -> dict[str, Any]:
    views = conversations.list_for(person.id, {}, world.ctx)["conversations"]
    return next(view for view in views if view["id"] == conversation_id)


# --- who is pushed ----------------------------------------------------------------------------


def test_big_group_members_get_no_presence_push_when_a_member_connects_or_disconnects(world):
    alice = world.person()
    _, members = group_of(world, alice, LIMIT + 1)
    world.forget_frames()

    phone = world.device(alice)
    world.disconnect(phone)

    assert [presence_of(world, member, alice) for member in members] == [[]] * LIMIT


def test_a_one_to_one_partner_and_a_small_groups_members_still_get_presence(world):
    alice, partner = world.person(), world.person()
    world.chat(alice, partner)
    partner_phone = world.device(partner)
    _, small = group_of(world, alice, LIMIT)  # at the limit: still pushed
    world.forget_frames()

    phone = world.device(alice)
    world.disconnect(phone)

    for watcher in (partner_phone, *small):
        assert presence_of(world, watcher, alice) == [True, False]


def test_sharing_a_small_conversation_too_brings_presence_despite_a_big_group(world):
    alice, friend = world.person(), world.person()
    others = [world.person() for _ in range(LIMIT)]
    world.chat(alice, friend, *others)  # big: LIMIT + 2 members
    world.chat(alice, friend)
    friend_phone, stranger_phone = world.device(friend), world.device(others[0])
    world.forget_frames()

    world.device(alice)

    assert presence_of(world, friend_phone, alice) == [True]
    assert presence_of(world, stranger_phone, alice) == []


def test_the_silent_sweep_announces_only_to_one_to_one_and_small_groups(world, clock):
    alice, partner = world.person(), world.person()
    world.chat(alice, partner)
    partner_phone = world.device(partner)
    _, big = group_of(world, alice, LIMIT + 2)
    world.device(alice)
    world.forget_frames()
    clock.advance(seconds=80)  # alice's socket silent past 75 s; the others ping
    for watcher in (partner_phone, *big):
        world.frame(watcher, "ping")

    presence.sweep_presence(presence.Liveness(), world.ctx)

    assert presence_of(world, partner_phone, alice) == [False]
    assert [presence_of(world, member, alice) for member in big] == [[]] * len(big)


def test_accepting_a_big_group_reveals_no_presence_and_a_small_one_does(world):
    owner = world.person()
    for size, revealed in ((LIMIT, [True]), (LIMIT + 2, [])):
        newcomer, others = world.person(), [world.person() for _ in range(size - 2)]
        chat = world.chat(owner, newcomer, *others, accepted=False)
        for other in others:
            conversations.accept(other.id, chat, world.ctx)
        watchers = [world.device(other) for other in others]
        world.device(newcomer)
        world.forget_frames()

        conversations.accept(newcomer.id, chat, world.ctx)

        assert [presence_of(world, w, newcomer) for w in watchers] == [revealed] * len(others)


# --- what clients read instead ----------------------------------------------------------------


def test_the_conversation_list_says_whether_presence_is_pushed(world):
    alice, partner = world.person(), world.person()
    direct = world.chat(alice, partner)
    small, _ = group_of(world, alice, LIMIT)
    big, _ = group_of(world, alice, LIMIT + 1)

    pushed = {chat: listed(world, alice, chat)["presence_pushed"]
              for chat in (direct, small, big)}

    assert pushed == {direct: True, small: True, big: False}


def test_a_big_groups_list_shows_members_online_without_any_push(world):
    alice, bob = world.person(), world.person()
    others = [world.person() for _ in range(LIMIT)]
    chat = world.chat(alice, bob, *others)
    world.device(alice)
    bob_phone = world.device(bob)
    world.forget_frames()

    def bob_shown_online() -> bool | None:
        return next(m["online"] for m in listed(world, alice, chat)["members"]
                    if m["user_id"] == bob.id)

    assert bob_shown_online() is True
    world.disconnect(bob_phone)
    assert bob_shown_online() is False
    assert world.push.frames == []


def test_presence_push_max_members_comes_from_the_environment():
    env = {"STAGE": "local", "JWT_SECRET": "s" * 40}
    assert Config.from_env(env).presence_push_max_members == 50
    assert Config.from_env({**env, "PRESENCE_PUSH_MAX_MEMBERS": "8"}).presence_push_max_members == 8


# --- what a connect costs -----------------------------------------------------------------------


def member_of_big_group(world: World, size: int) -> tuple[Person, Caller]:
    """Someone in a 1:1 (partner connected) and a group of `size` (everyone connected)."""
    person, partner = world.person(), world.person()
    world.chat(person, partner)
    partner_phone = world.device(partner)
    group_of(world, person, size)
    return person, partner_phone


def pushes_of_a_connect_and_disconnect(world: World, person: Person) -> list[str]:
    world.forget_frames()
    phone = world.device(person)
    world.disconnect(phone)
    return [cid for cid, frame in world.push.frames if frame["type"] == "presence"]


def test_a_connect_pushes_the_same_in_a_group_of_100_as_in_a_group_of_10(world):
    in_10, partner_10 = member_of_big_group(world, 10)
    in_100, partner_100 = member_of_big_group(world, 100)

    assert pushes_of_a_connect_and_disconnect(world, in_10) == [partner_10.connection_id] * 2
    assert pushes_of_a_connect_and_disconnect(world, in_100) == [partner_100.connection_id] * 2


def test_by_default_a_group_of_100_adds_no_push_to_a_connect(db, clock):
    push = RecordingPush()
    world = World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS),
                  push)
    person, partner_phone = member_of_big_group(world, 100)

    assert pushes_of_a_connect_and_disconnect(world, person) == [partner_phone.connection_id] * 2


def test_the_audience_query_reads_as_many_rows_for_a_group_of_100_as_for_10(mysql_db, clock):
    """What a connect reads on MariaDB does not grow with a big group's size: the group is
    judged by its (LIMIT + 1)-th member alone, and nobody in it is read."""
    world = world_on(mysql_db, clock)
    in_10, _ = member_of_big_group(world, 10)
    in_100, _ = member_of_big_group(world, 100)

    def audience_of(person: Person) -> Callable[[Transaction], object]:
        return lambda txn: connections.connection_ids_of_contacts(
            txn, person.id, max_group_members=LIMIT)

    assert rows_read(mysql_db, audience_of(in_10)) == rows_read(mysql_db, audience_of(in_100))


# --- receipts follow the same rule ------------------------------------------------------------


def test_in_a_big_group_a_members_ack_and_read_push_no_receipt_to_the_others(world):
    alice, bob = world.person(), world.person()
    others = [world.person() for _ in range(LIMIT - 1)]
    chat = world.chat(alice, bob, *others)
    alice_phone, bob_phone, bob_laptop = world.device(alice), world.device(bob), world.device(bob)
    others_devices = [world.device(other) for other in others]
    world.send(alice_phone, chat, body="read me")
    world.forget_frames()

    world.frame(bob_phone, "ack", conversation_id=chat, seq=1)
    world.frame(bob_phone, "read", conversation_id=chat, seq=1)

    assert world.received(alice_phone, "receipt") == []
    assert all(world.received(device, "receipt") == [] for device in others_devices)
    assert world.last(bob_laptop, "unread")["count"] == 0  # the reader's own devices still hear
    view = listed(world, alice, chat)  # the others read cursors from the conversation list
    seen = next(m for m in view["members"] if m["user_id"] == bob.id)
    assert seen["read_seq"] == 1 and seen["delivered_seq"] == 1


def test_in_a_small_group_a_members_read_is_pushed_as_receipts(world):
    alice = world.person()
    chat, members = group_of(world, alice, LIMIT)
    alice_phone = world.device(alice)
    world.send(alice_phone, chat, body="read me")
    world.forget_frames()

    world.frame(members[0], "read", conversation_id=chat, seq=1)

    assert {f["kind"] for f in world.received(alice_phone, "receipt")} == {"read", "delivered"}
