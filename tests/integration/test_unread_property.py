"""Unread counts never drift: after any mix of sends, reads and expiries, the count every
API reports equals a brute-force count over what was sent (invariant 6)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.clock import FixedClock
from chalicelib.services import conversations
from chalicelib.services.context import Context
from chalicelib.services.limits import NoLimits
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush

TTL_S = 30

steps = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.sampled_from(["alice", "bob"])),
        st.tuples(st.just("read"), st.integers(min_value=0, max_value=40)),
        st.tuples(st.just("wait"), st.integers(min_value=1, max_value=20)),
    ),
    min_size=1, max_size=30,
)


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=steps)
def test_unread_count_matches_a_brute_force_count(db, script):
    clock, push = FixedClock(), RecordingPush()
    world = World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS), push)
    alice, bob = world.person(), world.person()
    devices = {"alice": world.device(alice), "bob": world.device(bob)}
    chat = world.chat(alice, bob, ttl_seconds=TTL_S)
    sent: list[tuple[int, str, int]] = []  # (seq, sender, expires_at)
    bob_read = 0

    for step, value in script:
        if step == "send":
            world.send(devices[value], chat)
            frame = world.last(devices[value], "sent")
            sent.append((frame["seq"], value, frame["expires_at"]))
        elif step == "read":
            world.frame(devices["bob"], "read", conversation_id=chat, seq=value)
            bob_read = max(bob_read, min(value, len(sent)))
        else:
            clock.advance(seconds=value)

    now = clock.now_ms()
    expected = sum(1 for seq, sender, expires_at in sent
                   if seq > bob_read and sender != "bob" and expires_at > now)
    (listed,) = conversations.list_for(bob.id, {}, world.ctx)["conversations"]
    world.frame(devices["bob"], "sync", cursors={})
    (synced,) = world.last(devices["bob"], "sync")["conversations"]
    assert listed["unread_count"] == expected
    assert synced["unread_count"] == expected
    assert listed["read_seq"] == bob_read
