"""Presence after a silent drop: a socket that stops sending (lid shut, Wi-Fi lost) without a
close is shown offline within PRESENCE_SILENT_AFTER_S + PRESENCE_SWEEP_EVERY_S (75 + 15 s),
with its last activity as `last_seen_at`; a client that pings every minute never is.

Time is a fixed clock moved second by second; the presence sweep runs every 15 s of it, as
the scheduled function does."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from chalicelib.clock import FixedClock
from chalicelib.services import presence
from chalicelib.services.context import Caller, Context
from chalicelib.services.conversations import list_for
from chalicelib.services.limits import NoLimits
from chalicelib.services.presence import Liveness
from tests.integration.messaging_world import Person, World
from tests.support.concurrency import run_in_threads
from tests.support.fakes import TEST_KEYS, RecordingPush

LIVENESS = Liveness(silent_after_ms=75_000, sweep_every_ms=15_000)
BOUND_S = 90  # silent_after + sweep_every
START_MS = FixedClock().now_ms()  # the test clock's start, a whole quarter minute


@pytest.fixture
def world(db, clock) -> World:
    push = RecordingPush()
    return World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS), push)


def presence_of(world: World, watcher: Caller, person: Person) -> list[tuple[bool, int]]:
    return [(f["online"], f["last_seen_at"]) for f in world.received(watcher, "presence")
            if f["user_id"] == person.id]


def shown_online(world: World, watcher: Person, person: Person) -> tuple[bool, int]:
    """What GET /conversations tells `watcher` about `person`: (online, last_seen_at)."""
    views = list_for(watcher.id, {}, world.ctx)["conversations"]
    member = next(m for view in views for m in view["members"] if m["user_id"] == person.id)
    return member["online"], member["last_seen_at"]


def seconds_since_start(clock: FixedClock) -> int:
    return (clock.now_ms() - START_MS) // 1000


def live_through(world: World, clock: FixedClock, until_s: int, *,
                 pings: dict[str, Iterable[int]], sweep_phase_s: int = 0) -> None:
    """Move time on one second at a time until `until_s` (seconds since the clock's start):
    each connection in `pings` (by id) pings at the seconds listed, and the presence sweep
    runs every 15 s, `sweep_phase_s` into each quarter minute."""
    ping_at = {cid: set(times) for cid, times in pings.items()}
    while seconds_since_start(clock) < until_s:
        clock.advance(seconds=1)
        now_s = seconds_since_start(clock)
        for cid, times in ping_at.items():
            if now_s in times:
                world.frame(Caller(cid, "", ""), "ping")
        if now_s % 15 == sweep_phase_s:
            presence.sweep_presence(LIVENESS, world.ctx)


def every_minute(until_s: int) -> range:
    return range(60, until_s + 1, 60)


@pytest.mark.parametrize("last_ping_s", [60, 61, 67, 74, 75])  # against the 15 s sweep grid
def test_silent_socket_is_shown_offline_within_the_bound(world, clock, last_ping_s):
    """The socket dies right after its last ping (the worst case): offline is announced
    after silent_after (never sooner) and within the bound, with that ping's time."""
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone, alice_phone = world.device(bob), world.device(alice)
    live_through(world, clock, last_ping_s, pings={alice_phone.connection_id: [last_ping_s]})
    alice_last_activity = clock.now_ms()
    world.forget_frames()

    while not presence_of(world, bob_phone, alice):
        live_through(world, clock, seconds_since_start(clock) + 1,
                     pings={bob_phone.connection_id: every_minute(3600)})
        assert seconds_since_start(clock) <= last_ping_s + BOUND_S, "no offline in time"

    assert presence_of(world, bob_phone, alice) == [(False, alice_last_activity)]
    assert seconds_since_start(clock) - last_ping_s > LIVENESS.silent_after_ms // 1000


def test_a_socket_pinging_every_minute_is_never_shown_offline(world, clock):
    """Two hours of pings 50 to 70 s apart (10 s of jitter), sweeps every 15 s."""
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone, alice_phone = world.device(bob), world.device(alice)
    world.forget_frames()
    jitter = random.Random(20)
    alice_pings, at = [], 0
    while at < 7200:
        at += 60 + jitter.randint(-10, 10)
        alice_pings.append(at)

    live_through(world, clock, 7200, sweep_phase_s=7,
                 pings={alice_phone.connection_id: alice_pings,
                        bob_phone.connection_id: every_minute(7200)})

    assert presence_of(world, bob_phone, alice) == []
    assert shown_online(world, bob, alice)[0] is True


def test_a_silent_user_reads_offline_in_the_conversation_list_with_their_last_activity(
        world, clock):
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone, alice_phone = world.device(bob), world.device(alice)
    live_through(world, clock, 30, pings={alice_phone.connection_id: [30]})
    alice_last_activity = clock.now_ms()

    live_through(world, clock, 30 + BOUND_S, pings={bob_phone.connection_id: [60]})

    assert shown_online(world, bob, alice) == (False, alice_last_activity)


def test_a_silent_socket_that_pings_again_is_announced_online_again_exactly_once(world, clock):
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone, alice_phone = world.device(bob), world.device(alice)
    world.forget_frames()
    live_through(world, clock, 120, pings={bob_phone.connection_id: [60, 120]})
    assert [online for online, _ in presence_of(world, bob_phone, alice)] == [False]

    live_through(world, clock, 240, pings={alice_phone.connection_id: [125, 185],
                                          bob_phone.connection_id: [180, 240]})

    shown = presence_of(world, bob_phone, alice)
    assert [online for online, _ in shown] == [False, True]
    assert shown_online(world, bob, alice)[0] is True


def test_a_frame_on_a_silent_socket_announces_online_at_once_and_the_next_sweep_nothing(
        world, clock):
    """A connection marked silent that shows life is settled by the frame itself, not at the
    next sweep, and the sweep that follows finds nothing left to announce."""
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone, alice_phone = world.device(bob), world.device(alice)
    live_through(world, clock, 90, pings={bob_phone.connection_id: [60]})
    world.forget_frames()

    world.frame(alice_phone, "ping")

    assert presence_of(world, bob_phone, alice) == [(True, clock.now_ms())]
    presence.sweep_presence(LIVENESS, world.ctx)
    assert presence_of(world, bob_phone, alice) == [(True, clock.now_ms())]


def test_an_ack_on_a_silent_socket_announces_online_at_once_and_marks_it_live(world, clock):
    """An ack reads its caller inside its own transaction: it must still revive a silent
    connection, and the sweep after it finds nothing to announce."""
    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)
    bob_phone, alice_phone = world.device(bob), world.device(alice)
    world.send(bob_phone, chat, body="are you there?")
    live_through(world, clock, 90, pings={bob_phone.connection_id: [60]})
    world.forget_frames()

    world.frame(alice_phone, "ack", conversation_id=chat, seq=1)

    assert presence_of(world, bob_phone, alice) == [(True, clock.now_ms())]
    assert world.last(bob_phone, "receipt")["seq"] == 1
    presence.sweep_presence(LIVENESS, world.ctx)
    assert presence_of(world, bob_phone, alice) == [(True, clock.now_ms())]


def test_revoking_a_device_while_the_other_is_silent_announces_nothing_twice(world, clock):
    """Offline was announced when the last counted socket fell silent; revoking a device
    whose socket is already silent must not say it again."""
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone, alice_phone = world.device(bob), world.device(alice)
    world.forget_frames()
    live_through(world, clock, 120, pings={bob_phone.connection_id: [60, 120]})
    assert [online for online, _ in presence_of(world, bob_phone, alice)] == [False]

    world.ctx.db.run_transaction("t", revoke_txn, alice_phone.device_id, clock.now_ms())

    assert [online for online, _ in presence_of(world, bob_phone, alice)] == [False]


def revoke_txn(txn, device_id: str, now: int):
    from chalicelib.services.auth import _revoke_txn
    from chalicelib.storage import users

    outcome = _revoke_txn(txn, users.get_device(txn, device_id), now)
    assert outcome.went_offline is None
    return outcome


def test_two_devices_are_shown_offline_only_when_both_are_silent(world, clock):
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone = world.device(bob)
    world.device(alice)  # the phone
    laptop = world.device(alice)
    world.forget_frames()
    everyone_pings = every_minute(3600)

    # The phone goes silent at once; the laptop pings on for ten minutes, then goes too.
    live_through(world, clock, 600, pings={laptop.connection_id: everyone_pings,
                                          bob_phone.connection_id: everyone_pings})
    assert presence_of(world, bob_phone, alice) == []
    laptop_last_activity = clock.now_ms()

    live_through(world, clock, 600 + BOUND_S, pings={bob_phone.connection_id: everyone_pings})

    assert presence_of(world, bob_phone, alice) == [(False, laptop_last_activity)]


def test_reconnecting_after_a_silent_drop_is_announced_online_at_once(world, clock):
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone = world.device(bob)
    world.device(alice)
    live_through(world, clock, 120, pings={bob_phone.connection_id: [60, 120]})
    world.forget_frames()

    world.device(alice)  # a new socket; the silent one is still stored

    assert presence_of(world, bob_phone, alice) == [(True, clock.now_ms())]


def test_the_idle_sweep_removing_a_silent_socket_announces_nothing_and_keeps_the_truth(
        world, clock):
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone, alice_phone = world.device(bob), world.device(alice)
    alice_last_activity = clock.now_ms()
    world.forget_frames()
    live_through(world, clock, 660, pings={bob_phone.connection_id: every_minute(660)})

    removed = presence.sweep_stale_connections(idle_timeout_s=600, max_connection_s=7200,
                                               ctx=world.ctx)

    assert removed == 1
    assert world.push.disconnected == [alice_phone.connection_id]
    assert presence_of(world, bob_phone, alice) == [(False, alice_last_activity)]
    assert shown_online(world, bob, alice) == (False, alice_last_activity)


def test_a_silent_users_offline_reaches_only_people_who_share_an_accepted_conversation(
        world, clock):
    alice, bob, stranger = world.person(), world.person(), world.person()
    world.chat(alice, bob)
    world.chat(stranger, alice, accepted=False)  # a request alice never accepted
    bob_phone, stranger_phone = world.device(bob), world.device(stranger)
    world.device(alice)
    world.forget_frames()

    live_through(world, clock, BOUND_S, pings={bob_phone.connection_id: [60],
                                              stranger_phone.connection_id: [60]})

    assert [online for online, _ in presence_of(world, bob_phone, alice)] == [False]
    assert presence_of(world, stranger_phone, alice) == []


def test_concurrent_sweeps_announce_a_silent_drop_once(mysql_db, clock):
    push = RecordingPush()
    world = World(Context(db=mysql_db, push=push, clock=clock, limiter=NoLimits(),
                           keys=TEST_KEYS), push)
    watcher_person = world.person()
    watcher = world.device(watcher_person)
    people = [world.person() for _ in range(5)]
    for person in people:
        world.chat(watcher_person, person)
        world.device(person)
        world.device(person)
    world.forget_frames()
    clock.advance(seconds=76)
    world.frame(watcher, "ping")

    run_in_threads(6, lambda _: presence.sweep_presence(LIVENESS, world.ctx))

    for person in people:
        assert [online for online, _ in presence_of(world, watcher, person)] == [False]


def test_a_sweep_racing_a_reconnect_leaves_others_with_the_truth(mysql_db, clock):
    """Whatever the interleaving of a sweep finding the old socket silent and a new socket
    opening: offline and online both, or neither, and the list says online."""
    push = RecordingPush()
    world = World(Context(db=mysql_db, push=push, clock=clock, limiter=NoLimits(),
                           keys=TEST_KEYS), push)
    watcher_person = world.person()
    watcher = world.device(watcher_person)
    for _ in range(10):
        person = world.person()
        world.chat(watcher_person, person)
        world.device(person)
        clock.advance(seconds=80)
        world.frame(watcher, "ping")
        world.forget_frames()

        run_in_threads(3, lambda i, who=person: world.device(who) if i == 0
                       else presence.sweep_presence(LIVENESS, world.ctx))

        shown = sorted(online for online, _ in presence_of(world, watcher, person))
        assert shown in ([], [False, True]), shown  # the reconnect may beat the sweep
        assert shown_online(world, watcher_person, person)[0] is True


def test_the_presence_watch_keeps_watching_and_announces_a_drop_within_the_run(world, clock):
    alice, bob = world.person(), world.person()
    world.chat(alice, bob)
    bob_phone = world.device(bob)
    clock.advance(seconds=29)
    world.device(alice)
    alice_opened_at = clock.now_ms()
    clock.advance(seconds=31)
    world.frame(bob_phone, "ping")
    world.forget_frames()
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        clock.advance(ms=round(seconds * 1000))

    figures = presence.run_watch(world.ctx, liveness=LIVENESS, watch_for_s=45, sleep=sleep)

    # Alice's socket, quiet since it opened, turns silent 44 s into the run: the run waits
    # for that moment, no longer, and announces it.
    assert presence_of(world, bob_phone, alice) == [(False, alice_opened_at)]
    assert figures["presence_offline"] == 1
    assert naps == [44.001]
    assert world.count("connections") == 2  # only the idle sweep deletes a silent one


def test_the_presence_watch_with_no_one_connected_does_not_wait(world, clock):
    naps: list[float] = []

    figures = presence.run_watch(world.ctx, liveness=LIVENESS, watch_for_s=45,
                                 sleep=naps.append)

    assert naps == []
    assert figures["presence_sweeps"] == 1
