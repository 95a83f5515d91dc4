"""The safety review's findings 2, 3, 4, 6, 7, 8 and 9, each reproduced: every test here
failed on the code the review was made against and passes now. (Finding 1 is in
test_consent_and_blocks.py, 5 in test_login_abuse.py, 10 in e2e/test_local_stack_safety.py.)"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import replace

import pytest

from chalicelib.crypto import keyed_hash
from chalicelib.errors import Forbidden, RateLimited
from chalicelib.ids import new_id
from chalicelib.services import conversations, reading, sockets
from chalicelib.services.context import Context
from chalicelib.services.limits import NoLimits, SlidingWindowLimiter, load_policies
from chalicelib.services.tokens import Tokens
from chalicelib.storage import messages
from chalicelib.storage.database import Database, Transaction
from chalicelib.storage.messages import Message
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush

DAY_S = 86_400


class CountingDatabase(Database):
    """A `Database` that remembers the names of the write transactions it ran."""

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.transactions: list[str] = []

    def run_transaction(self, name, func, *args, **kwargs):
        self.transactions.append(name)
        return super().run_transaction(name, func, *args, **kwargs)


def limited_world(db: Database, clock, **overrides: str) -> World:
    """A world with the real sliding-window limiter and the default policies (or these)."""
    limiter = SlidingWindowLimiter(db=db, clock=clock, policies=load_policies(overrides))
    return World(Context(db=db, push=RecordingPush(), clock=clock, limiter=limiter,
                          keys=TEST_KEYS), RecordingPush())


@pytest.fixture
def world(db, clock) -> World:
    push = RecordingPush()
    return World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS),
                 push)


def fix_world(world: World) -> World:
    world.push = world.ctx.push  # one recording adapter for frames sent and read
    return world


# --- 2. denial of service against a chosen user ------------------------------------------


def test_a_new_account_cannot_open_conversations_with_anyone_in_a_burst(db, clock):
    world = fix_world(limited_world(db, clock))
    attacker, victim = world.person(), world.person()

    opened = 0
    with pytest.raises(RateLimited) as denied:
        for _ in range(50):
            conversations.create(attacker.id, {"members": [victim.phone, world.new_phone()],
                                               "title": "spam"}, world.ctx)
            opened += 1

    assert opened == 5  # conversations_per_new_user: 5 an hour
    assert denied.value.retry_after_ms > 0
    assert len(conversations.list_for(victim.id, {}, world.ctx)["conversations"]) == 5


def test_strangers_a_user_may_add_are_capped_per_day_with_or_without_an_account(db, clock):
    world = fix_world(limited_world(db, clock, RATE_CONVERSATIONS_PER_USER="100/3600"))
    clock.advance(seconds=2 * DAY_S)  # an established account
    creator, friend, registered = world.person(), world.person(), world.person()
    world.chat(creator, friend)
    users_before = world.count("users")

    conversations.create(creator.id, {"members": [world.new_phone() for _ in range(48)],
                                      "title": "forty-eight strangers"}, world.ctx)
    for phone in (world.new_phone(), registered.phone):  # the cap cannot tell them apart
        with pytest.raises(RateLimited):
            conversations.create(creator.id, {"members": [phone, world.new_phone()]}, world.ctx)
    conversations.create(creator.id, {"members": [friend.phone, world.new_phone()]},
                         world.ctx)  # friend, 48, 1: the 50th stranger fits; friends never count

    assert world.count("users") == users_before + 49


def test_the_conversation_list_is_paged_by_latest_activity(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chats = [world.chat(alice, bob, world.person()) for _ in range(7)]
    world.ctx.clock.advance(ms=5)
    world.send(phone, chats[2], body="bump")

    first = conversations.list_for(bob.id, {"limit": "3"}, world.ctx)
    second = conversations.list_for(bob.id, {"limit": "3", "cursor": first["next_cursor"]},
                                    world.ctx)
    third = conversations.list_for(bob.id, {"limit": "3", "cursor": second["next_cursor"]},
                                   world.ctx)

    ids = [c["id"] for page in (first, second, third) for c in page["conversations"]]
    assert ids[0] == chats[2] and sorted(ids) == sorted(chats) and len(set(ids)) == 7
    assert third["next_cursor"] is None and len(third["conversations"]) == 1


def test_a_page_of_big_groups_stays_under_its_byte_budget(world, monkeypatch):
    monkeypatch.setattr(conversations, "LIST_REPLY_BUDGET_BYTES", 20_000)
    owner, victim = world.person(), world.person()
    for _ in range(4):
        conversations.create(owner.id, {"members": [victim.phone] + [
            world.new_phone() for _ in range(40)], "title": "crowd"}, world.ctx)

    page = conversations.list_for(victim.id, {}, world.ctx)

    assert len(json.dumps(page).encode()) < 20_000 + 10_000  # one group may cross it
    assert 1 <= len(page["conversations"]) < 4 and page["next_cursor"] is not None


def test_sync_answers_within_one_push_and_says_more_conversations(world):
    alice, bob = world.person(), world.person()
    alice_phone, bob_phone = world.device(alice), world.device(bob)
    chats = [world.chat(alice, bob, world.person())
             for _ in range(reading.SYNC_CONVERSATIONS_PER_REPLY + 20)]
    for chat in chats:
        world.send(alice_phone, chat, body="hi")

    world.frame(bob_phone, "sync", cursors={}, req="s1")
    first = world.last(bob_phone, "sync")
    cursors = {e["conversation_id"]: e["last_seq"] for e in first["conversations"]}
    world.frame(bob_phone, "sync", cursors=cursors, req="s2")
    second = world.last(bob_phone, "sync")

    assert first["more_conversations"] is True
    assert len(first["conversations"]) == reading.SYNC_CONVERSATIONS_PER_REPLY
    assert second["more_conversations"] is False
    delivered = {e["conversation_id"] for e in first["conversations"] + second["conversations"]
                 if e["messages"]}
    assert delivered == set(chats)
    assert len(json.dumps(first).encode()) < 128 * 1024


# --- 3. `send` escaped every limit --------------------------------------------------------


def test_duplicate_sends_are_rate_limited_like_any_other(db, clock):
    world = fix_world(limited_world(db, clock))
    clock.advance(seconds=2 * DAY_S)
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)

    for attempt in range(40):
        world.send(phone, chat, body="same", client_msg_id="dup-000001", req=attempt)

    sent, errors = world.received(phone, "sent"), world.received(phone, "error")
    assert len(sent) == 20 and {e["code"] for e in errors} == {"rate_limited"}
    assert world.count("messages") == 1


def test_a_retry_is_answered_without_a_locking_send_transaction(mysql_db, clock):
    db = CountingDatabase(mysql_db.engine)
    world = World(Context(db=db, push=RecordingPush(), clock=clock, limiter=NoLimits(),
                           keys=TEST_KEYS), RecordingPush())
    fix_world(world)
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    world.send(phone, chat, body="once", client_msg_id="retry-0001")
    db.transactions.clear()

    for _ in range(5):
        world.send(phone, chat, body="once", client_msg_id="retry-0001")

    assert "messaging.send" not in db.transactions
    assert [f["duplicate"] for f in world.received(phone, "sent")] == [False] + [True] * 5
    db.close()


def test_every_frame_counts_against_the_connection_sends_and_bad_frames_included(db, clock):
    world = fix_world(limited_world(db, clock, RATE_FRAMES_PER_CONNECTION="6/60"))
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)

    for i in range(3):
        world.send(phone, chat, body=f"message {i}")
    world.raw(phone, "{not json")
    world.frame(phone, "send", conversation_id=chat, client_msg_id="bad", body="x")
    world.send(phone, chat, body="again", client_msg_id="dup-0000001")
    world.send(phone, chat, body="again", client_msg_id="dup-0000001")

    codes = [f.get("code") for f in world.received(phone) if f["type"] == "error"]
    assert codes == ["bad_request", "bad_request", "rate_limited"]
    assert world.count("messages") == 4


# --- 4. sync amplification --------------------------------------------------------------------


def test_sync_reads_a_bounded_number_of_body_bytes_per_call(world, monkeypatch):
    alice, bob = world.person(), world.person()
    bob_phone = world.device(bob)
    chats = [world.chat(alice, bob, world.person()) for _ in range(6)]
    body = "x" * 16_000
    now = world.ctx.clock.now_ms()
    for chat in chats:  # straight into storage: 6 x 40 bodies of 16 KB, 3.8 MB
        stored = [Message(new_id(), chat, seq, alice.id, "dev", f"c-{chat}-{seq}",
                          body, now, now + 3_600_000) for seq in range(1, 41)]
        world.ctx.db.run_transaction("t", _store, chat, stored)
    fetched = []
    original = Transaction.fetchall

    def counting_fetchall(self):
        rows = original(self)
        fetched.extend(len(r["body"].encode()) for r in rows if isinstance(r.get("body"), str))
        return rows

    monkeypatch.setattr(Transaction, "fetchall", counting_fetchall)
    world.frame(bob_phone, "sync", cursors={}, limit=500)

    reply = world.last(bob_phone, "sync")
    assert sum(fetched) <= reading.SYNC_REPLY_BUDGET_BYTES  # not 3.8 MB to trim to 96 KB
    assert reply["more_conversations"] is True
    assert sum(len(e["messages"]) for e in reply["conversations"]) >= 5


def _store(txn: Transaction, chat: str, stored: list[Message]) -> None:
    for message in stored:
        messages.insert_message(txn, message)
    txn.execute("UPDATE conversations SET last_seq = %s WHERE id = %s", (len(stored), chat))


# --- 6. the revocation race ---------------------------------------------------------------


def test_a_connect_racing_a_revocation_stores_no_connection(mysql_db, clock):
    """MariaDB, with the revocation paused while it holds the user's lock: the handshake that
    arrives meanwhile must wait for it and then see the device revoked. The steps wait on
    what the server says (the lock taken, a transaction waiting for it), never on the clock:
    a slow machine only makes the test slower."""
    world = fix_world(World(Context(db=mysql_db, push=RecordingPush(), clock=clock,
                                     limiter=NoLimits(), keys=TEST_KEYS), RecordingPush()))
    alice = world.person()
    caller = world.device(alice)
    world.disconnect(caller)
    tokens = Tokens(key=TEST_KEYS.jwt, issuer="ephemera", audience="ephemera-api", clock=clock)
    ticket = tokens.ticket(alice.id, caller.device_id)
    revoker = Database(mysql_db.engine)
    locked, handshake_waits = threading.Event(), threading.Event()

    def revoke_slowly(txn: Transaction) -> None:
        txn.execute("UPDATE users SET last_seen_at = %s WHERE id = %s", (1, alice.id))
        locked.set()  # the user's row is held: the handshake starts now
        handshake_waits.wait(timeout=10)  # the injected pause, until it queues behind us
        txn.execute("UPDATE devices SET revoked_at = %s, token_version = token_version + 1"
                    " WHERE id = %s", (clock.now_ms(), caller.device_id))

    revocation = threading.Thread(target=revoker.run_transaction,
                                  args=("t", revoke_slowly))
    watcher = threading.Thread(target=signal_a_lock_wait, args=(mysql_db, handshake_waits))
    revocation.start()
    try:
        assert locked.wait(timeout=10)
        watcher.start()
        with pytest.raises(Forbidden):
            sockets.open_connection(ticket, "RACING-CONN=", replace(world.ctx, tokens=tokens))
    finally:
        handshake_waits.set()
        revocation.join()
        if watcher.is_alive():
            watcher.join()
        revoker.close()

    assert world.count("connections") == 0


def signal_a_lock_wait(db: Database, waiting: threading.Event, timeout_s: float = 10) -> None:
    """Set `waiting` once some transaction waits for a row lock (or after `timeout_s`: a
    handshake that never waits is then caught by the test's own assertion)."""
    connection = db.engine.connect(autocommit=True)
    deadline = time.monotonic() + timeout_s
    try:
        with connection.cursor() as cur:
            while not waiting.is_set() and time.monotonic() < deadline:
                cur.execute("SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX"
                            " WHERE trx_state = 'LOCK WAIT'")
                if cur.fetchone()["n"]:
                    break
                time.sleep(0.01)
    finally:
        connection.close()
        waiting.set()


def test_frames_on_a_connection_of_a_revoked_device_are_refused(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    world.sql("UPDATE devices SET revoked_at = 1 WHERE id = %s", phone.device_id)

    world.send(phone, chat, body="after revocation")

    assert world.last(phone, "error")["code"] == "unauthorized"
    assert world.count("messages") == 0


# --- 7. outsiders spent a conversation's budget ----------------------------------------------


def test_outsiders_sends_spend_no_conversation_budget(db, clock):
    world = fix_world(limited_world(db, clock, RATE_SEND_PER_CONVERSATION="3/60"))
    alice, bob = world.person(), world.person()
    outsiders = [world.device(world.person()) for _ in range(3)]
    alice_phone = world.device(alice)
    chat = world.chat(alice, bob)

    for outsider in outsiders:
        for _ in range(3):
            world.send(outsider, chat, body="let me in")
    world.send(alice_phone, chat, body="still works")

    assert {world.last(o, "error")["code"] for o in outsiders} == {"not_found"}
    assert world.last(alice_phone, "sent")["seq"] == 1


# --- 8. bodies outlived expiry as hashes -------------------------------------------------------


def test_no_unkeyed_hash_of_a_body_is_stored(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    body = "my PIN is 4921 and nobody knows"

    world.send(phone, chat, body=body)

    plain = hashlib.sha256(body.encode()).hexdigest()
    stored = world.rows("idempotency_keys")[0]["body_hash"]
    assert stored != plain and stored == keyed_hash(TEST_KEYS.body, body)
    assert not any(plain in row["bucket"] for row in world.rows("rate_limit_windows"))


# --- 9. bad input answered 500 or `internal` ------------------------------------------------


@pytest.mark.parametrize("query", [
    {"after_seq": "²"}, {"limit": "³"}, {"after_seq": "9" * 5000}, {"after_seq": "-1"},
    {"before_seq": "0"}, {"after_seq": "1", "before_seq": "5"}, {"limit": "1e3"},
])
def test_odd_history_queries_are_bad_requests(world, query):
    from chalicelib.errors import InvalidInput

    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)

    with pytest.raises(InvalidInput):
        reading.history(alice.id, chat, query, world.ctx)


@pytest.mark.parametrize("fields", [
    {"action": "read", "seq": "²"}, {"action": "read", "seq": 10**30},
    {"action": "ack", "seq": 2**63}, {"action": "sync", "cursors": {"x": 10**30}},
    {"action": "send", "client_msg_id": "lone-surrogate", "body": "\ud800"},
])
def test_odd_frame_fields_are_bad_requests_not_internal(world, fields):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    frame = {"conversation_id": chat, "req": "odd", **fields}

    world.raw(phone, json.dumps(frame))  # ASCII JSON: "\ud800" arrives as an escape

    error = world.last(phone, "error")
    assert (error["code"], error["req"]) in {("bad_request", "odd"), ("not_found", "odd")}
    assert error["code"] == "bad_request" or fields["action"] == "sync"
    assert world.count("messages") == 0


# --- bounded work stays cheap ---------------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "SELECT COUNT(*) AS n FROM messages WHERE conversation_id = %s AND seq > %s"
    " AND sender_id <> %s AND expires_at > %s",
    "SELECT MIN(seq) AS seq FROM messages WHERE conversation_id = %s AND seq > %s"
    " AND expires_at > %s",
])
def test_unread_counts_and_the_oldest_seq_read_the_index_alone(mysql_db, clock, sql):
    world = fix_world(World(Context(db=mysql_db, push=RecordingPush(), clock=clock,
                                     limiter=NoLimits(), keys=TEST_KEYS), RecordingPush()))
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    for i in range(30):
        world.send(phone, chat, body=f"message {i}")

    def explain(txn):
        txn.execute("ANALYZE TABLE messages")
        txn.fetchall()
        params = (chat, 0, bob.id, 0) if "sender_id" in sql else (chat, 0, 0)
        txn.execute("EXPLAIN " + sql, params)
        return txn.fetchall()

    (plan,) = mysql_db.run_read("t", explain)
    assert "Using index" in (plan["Extra"] or ""), plan
