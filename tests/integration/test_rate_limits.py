"""Rate limits in the database: exact under concurrency, sliding as specified, and wired into
every policy's action (a denial answers 429 / `rate_limited` and changes nothing)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import ws_connect
from chalicelib import bootstrap
from chalicelib.clock import FixedClock
from chalicelib.errors import RateLimited
from chalicelib.ids import new_id
from chalicelib.services.context import Context
from chalicelib.services.limits import Policy, SlidingWindowLimiter, allows, load_policies
from chalicelib.storage import outbox
from tests.integration.messaging_world import World
from tests.integration.test_auth_routes import connect_event
from tests.support.concurrency import run_in_threads
from tests.support.fakes import TEST_KEYS, RecordingPush


def limiter_for(db, clock, limit, window_ms=60_000) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(db=db, clock=clock,
                                policies={"test": Policy("test", limit, window_ms)})


def hit(limiter, key="k") -> bool:
    try:
        limiter.check([("test", key)])
        return True
    except RateLimited:
        return False


def test_exactly_n_of_n_plus_k_concurrent_hits_are_allowed(mysql_db, clock):
    limiter = limiter_for(mysql_db, clock, limit=25)

    outcomes = run_in_threads(10, lambda _: [hit(limiter) for _ in range(4)])

    results = [outcome for batch in outcomes for outcome in batch]
    assert (results.count(True), results.count(False)) == (25, 15)


class Reference:
    """The weighted two-window counter, brute force: the accepted hits' times, counted."""

    def __init__(self, limit: int, window: int) -> None:
        self.limit, self.window, self.hits = limit, window, []

    def hit(self, now: int) -> bool:
        start = now - now % self.window
        current = sum(1 for t in self.hits if start <= t < start + self.window)
        previous = sum(1 for t in self.hits if start - self.window <= t < start)
        if allows(self.limit, self.window, previous, current + 1, now - start):
            self.hits.append(now)
            return True
        return False


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.integers(min_value=1, max_value=6),
       gaps=st.lists(st.integers(min_value=0, max_value=4_000), min_size=1, max_size=40))
def test_the_window_slides_as_a_brute_force_count_says(db, limit, gaps):
    clock = FixedClock(1_767_225_600_000 + 1_234)  # not on a window boundary
    key = f"timeline-{new_id()}"  # examples share the database: each gets its own bucket
    limiter, reference = limiter_for(db, clock, limit, window_ms=10_000), Reference(limit, 10_000)
    for gap in gaps:
        clock.advance(ms=gap)
        assert hit(limiter, key) == reference.hit(clock.now_ms()), clock.now_ms()
        # a denial is not counted: what is stored is exactly what was let through
        assert db.run_read("t", _hits_for, f"test:{key}") == len(reference.hits)


def _hits_for(txn, bucket):
    txn.execute("SELECT COALESCE(SUM(hits), 0) AS n FROM rate_limit_windows WHERE bucket = %s",
                (bucket,))
    return int(txn.fetchone()["n"])


def test_a_denial_says_when_to_retry_and_then_the_retry_is_allowed(db, clock):
    limiter = limiter_for(db, clock, limit=2, window_ms=60_000)
    assert hit(limiter) and hit(limiter)

    with pytest.raises(RateLimited) as denied:
        limiter.check([("test", "k")])

    clock.advance(ms=denied.value.retry_after_ms - 1)
    assert not hit(limiter)
    clock.advance(ms=1)
    assert hit(limiter)


def test_a_denied_hit_is_not_counted(db, clock):
    limiter = limiter_for(db, clock, limit=1)
    hit(limiter)
    for _ in range(5):
        hit(limiter)

    assert db.run_read("t", _hits_for, "test:k") == 1


# --- every policy is wired -----------------------------------------------------------------


@pytest.fixture
def world(db, clock) -> World:
    push = RecordingPush()
    limiter = SlidingWindowLimiter(db=db, clock=clock, policies=load_policies({}))
    return World(Context(db=db, push=push, clock=clock, limiter=limiter, keys=TEST_KEYS), push)


def test_a_send_flood_is_refused_with_retry_after_and_nothing_is_stored(world, clock):
    alice, bob = world.person(), world.person()
    clock.advance(seconds=2 * 86_400)  # an established account
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    world.forget_frames()

    for i in range(25):
        world.send(phone, chat, body=f"flood {i}", req=i)

    sent, errors = world.received(phone, "sent"), world.received(phone, "error")
    assert len(sent) == 20  # send_burst_per_user: 20 per 10 s
    assert {e["code"] for e in errors} == {"rate_limited"}
    assert all(e["retry_after_ms"] > 0 for e in errors)
    assert world.count("messages") == 20
    clock.advance(ms=errors[-1]["retry_after_ms"])
    world.send(phone, chat, body="after waiting")
    assert world.last(phone, "sent")["seq"] == 21  # no gap: denied sends took no seq


def test_a_new_account_is_throttled_harder_than_an_old_one(world, clock):
    veteran, friend = world.person(), world.person()
    veteran_phone = world.device(veteran)
    clock.advance(seconds=2 * 86_400)
    newcomer = world.person()
    newcomer_phone = world.device(newcomer)
    chats = {p.id: world.chat(p, friend) for p in (veteran, newcomer)}

    def sends_allowed(person, device) -> int:
        for i in range(30):  # 30 over a minute: under the burst limit, over the new-user one
            world.send(device, chats[person.id], body=f"{i}")
            clock.advance(seconds=2)
        return len(world.received(device, "sent"))

    assert sends_allowed(veteran, veteran_phone) == 30
    assert sends_allowed(newcomer, newcomer_phone) == 20


def test_the_same_long_body_across_conversations_is_throttled_as_spam(world, clock):
    spammer = world.person()
    clock.advance(seconds=2 * 86_400)
    phone = world.device(spammer)
    chats = [world.chat(spammer, world.person()) for _ in range(8)]
    pitch = "Win a free cruise! Reply with your card number."
    world.forget_frames()

    for chat in chats:
        world.send(phone, chat, body=pitch)
        world.send(phone, chat, body="ok")  # short replies repeat innocently

    assert len(world.received(phone, "sent")) == 5 + 8
    assert [e["code"] for e in world.received(phone, "error")] == ["rate_limited"] * 3


def test_a_read_flood_on_one_socket_is_refused(world):
    alice, bob = world.person(), world.person()
    bob_phone = world.device(bob)
    chat = world.chat(alice, bob)
    world.forget_frames()

    for _ in range(245):
        world.frame(bob_phone, "read", conversation_id=chat, seq=0)

    errors = world.received(bob_phone, "error")
    assert len(errors) == 5 and {e["code"] for e in errors} == {"rate_limited"}


# --- over REST and at the handshake ---------------------------------------------------------


def post(client, path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = client.http.post(path, headers=headers, body=json.dumps(body))
    return response


def test_an_otp_flood_gets_429_with_retry_after_and_sends_nothing_more(client, mysql_db):
    replies = [post(client, "/auth/otp", {"phone": "+14155550101"}) for _ in range(5)]

    assert [r.status_code for r in replies] == [202, 202, 202, 429, 429]
    assert int(replies[3].headers["Retry-After"]) > 0
    assert json.loads(replies[3].body)["error"]["code"] == "rate_limited"
    assert len(mysql_db.run_read("t", outbox.sms_for_phone, "+14155550101")) == 3


def test_a_connect_flood_gets_a_bare_429_at_the_handshake(client, mysql_db, monkeypatch):
    monkeypatch.setenv("RATE_CONNECT_PER_USER", "2/60")
    monkeypatch.setenv("RATE_TICKET_PER_USER", "100/60")
    bootstrap.reset()
    challenge = json.loads(post(client, "/auth/otp", {"phone": "+14155550101"}).body)
    code = mysql_db.run_read("t", outbox.sms_for_phone, "+14155550101")[0].code
    session = json.loads(post(client, "/auth/verify", {
        "challenge_id": challenge["challenge_id"], "code": code, "device_name": "p"}).body)

    statuses = []
    for i in range(4):
        ticket = json.loads(post(client, "/ws/ticket", {}, session["access_token"]).body)
        event = connect_event(f"conn-{i}=", {"ticket": ticket["ticket"]})
        statuses.append(ws_connect(event, None)["statusCode"])

    assert statuses == [200, 200, 429, 429]
