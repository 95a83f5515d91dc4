"""SQL injection (issue 25): classic injection strings in every text a client can set, over
REST (the app through Chalice's test client) and over the socket (the real `$default`
dispatcher), on MariaDB. Each one is stored verbatim (read back through the API and from its
row) or refused with a client error; never executed: every table is still there with the
rows it had, apart from the one intended write."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from chalicelib.services.context import Context
from chalicelib.services.limits import NoLimits
from chalicelib.storage.database import Database
from tests.integration.messaging_world import World
from tests.integration.test_conversation_routes import Api
from tests.support.fakes import TEST_KEYS, RecordingPush

INJECTIONS = [
    "'; DROP TABLE messages; --",
    "\" OR 1=1 --",
    "' OR '1'='1",
    "1; DELETE FROM users; #",
    "' UNION SELECT id, phone FROM users --",
    "\\",
    "\\'; DROP TABLE users; --",
    "%",
    "_",
    "%s %(x)s",  # PyMySQL's own placeholders
    "/*",
    "*/ --",
    "`users`",
    "\u2019; DROP TABLE participants; --",  # a typographic quote
    "\uff07 OR 1=1 --",  # a fullwidth apostrophe
    "\u02bc OR \u02bc1\u02bc=\u02bc1",  # a modifier letter apostrophe
    "a\x00'; DROP TABLE blocks; --",  # NUL
]
CLIENT_ERRORS = {"bad_request", "unauthorized", "forbidden", "not_found", "conflict", "gone",
                 "too_large"}
# Left out of the row counts: every request counts against its rate limits, a refused one too.
COUNTED_ON_EVERY_REQUEST = {"rate_limit_windows"}
ALICE, BOB, CAROL = "+14155550101", "+14155550102", "+14155550103"
# Enough for a login and a conversation per injection string; the limits are not on trial.
GENEROUS_LIMITS = ("OTP_PER_PHONE", "OTP_PER_PHONE_DAILY", "OTP_PER_PHONE_GLOBAL", "OTP_PER_IP",
                   "VERIFY_PER_PHONE", "VERIFY_PER_PHONE_GLOBAL", "CONVERSATIONS_PER_USER",
                   "CONVERSATIONS_PER_NEW_USER")


def row_counts(db: Database) -> dict[str, int]:
    """Every table and its number of rows."""
    def count(txn) -> dict[str, int]:
        txn.execute("SHOW TABLES")
        tables = sorted(next(iter(row.values())) for row in txn.fetchall())
        counts = {}
        for table in set(tables) - COUNTED_ON_EVERY_REQUEST:
            txn.execute(f"SELECT COUNT(*) AS n FROM `{table}`")
            counts[table] = txn.fetchone()["n"]
        return counts

    return db.run_read("t", count)


def assert_only_changed(before: dict[str, int], after: dict[str, int],
                        **expected: int) -> None:
    """The same tables, and row counts that moved by `expected` (table=delta) alone."""
    assert set(after) == set(before), "a table is gone"
    moved = {table: after[table] - before[table] for table in before
             if after[table] != before[table]}
    assert moved == expected


def one_column(db: Database, sql: str, *params: Any) -> Any:
    def read(txn):
        txn.execute(sql, params)
        return next(iter(txn.fetchone().values()))

    return db.run_read("t", read)


def assert_client_error(status: int, reply: Any, injection: str) -> None:
    assert 400 <= status < 500, (injection, status, reply)
    assert reply["error"]["code"] in CLIENT_ERRORS, (injection, reply)


@pytest.fixture
def api(monkeypatch, client, mysql_db) -> Api:
    for name in GENEROUS_LIMITS:
        monkeypatch.setenv(f"RATE_{name}", "100000/60")
    return Api(client, mysql_db)


@pytest.fixture
def alice(api) -> str:
    api.login(BOB)
    api.login(CAROL)
    return api.login(ALICE)["access_token"]


# --- REST ---------------------------------------------------------------------------------------


def test_a_display_name_is_stored_verbatim_or_refused(api, alice):
    me = one_column(api.db, "SELECT id FROM users WHERE phone = %s", ALICE)
    for injection in INJECTIONS:
        before = row_counts(api.db)

        status, reply = api.call("PATCH", "/me", {"display_name": injection}, alice)

        if status == 200:
            assert api.call("GET", "/me", token=alice)[1]["display_name"] == injection
            assert one_column(api.db, "SELECT display_name FROM users WHERE id = %s",
                              me) == injection
        else:  # no control characters in a name: NUL
            assert_client_error(status, reply, injection)
            assert "\x00" in injection
        assert_only_changed(before, row_counts(api.db))


def test_a_conversation_title_is_stored_verbatim_at_creation_and_on_change(api, alice):
    for injection in INJECTIONS:
        before = row_counts(api.db)

        status, created = api.call("POST", "/conversations",
                                   {"members": [BOB, CAROL], "title": injection}, alice)
        assert status == 201, (injection, created)
        status, changed = api.call("PATCH", f"/conversations/{created['id']}",
                                   {"title": injection[::-1]}, alice)

        assert (created["title"], changed["title"]) == (injection, injection[::-1])
        assert one_column(api.db, "SELECT title FROM conversations WHERE id = %s",
                          created["id"]) == injection[::-1]
        listed = api.call("GET", "/conversations?limit=1", token=alice)[1]["conversations"]
        assert [c["title"] for c in listed] == [injection[::-1]]
        assert_only_changed(before, row_counts(api.db), conversations=1, participants=3)


def test_a_device_name_is_stored_verbatim(api, alice):
    for injection in INJECTIONS:
        before = row_counts(api.db)
        _, challenge = api.call("POST", "/auth/otp", {"phone": ALICE})
        code = one_column(api.db, "SELECT code FROM sms_outbox WHERE phone = %s"
                          " ORDER BY sent_at DESC, id DESC LIMIT 1", ALICE)

        status, session = api.call("POST", "/auth/verify", {
            "challenge_id": challenge["challenge_id"], "code": code, "device_name": injection})

        assert status == 200, (injection, session)
        devices = api.call("GET", "/devices", token=session["access_token"])[1]["devices"]
        assert [d["name"] for d in devices if d["id"] == session["device_id"]] == [injection]
        assert one_column(api.db, "SELECT name FROM devices WHERE id = %s",
                          session["device_id"]) == injection
        assert_only_changed(before, row_counts(api.db), otp_challenges=1, sms_outbox=1,
                            devices=1, refresh_tokens=1)


def test_phone_fields_refuse_injection_strings(api, alice):
    _, group = api.call("POST", "/conversations", {"members": [BOB, CAROL]}, alice)
    for injection in INJECTIONS:
        before = row_counts(api.db)
        for method, path, body in [
            ("POST", "/auth/otp", {"phone": injection}),
            ("POST", "/auth/otp", {"phone": f"+1415555{injection}"}),
            ("POST", "/conversations", {"members": [injection]}),
            ("POST", f"/conversations/{group['id']}/members", {"members": [BOB, injection]}),
        ]:
            status, reply = api.call(method, path, body, alice)

            assert_client_error(status, reply, injection)
        assert_only_changed(before, row_counts(api.db))


def test_ids_cursors_and_query_strings_refuse_injection_strings(api, alice):
    _, group = api.call("POST", "/conversations", {"members": [BOB, CAROL]}, alice)
    chat = group["id"]
    for injection in INJECTIONS:
        before = row_counts(api.db)
        raw = quote(injection, safe="")
        for method, path, body in [
            ("GET", f"/conversations?cursor={raw}", None),
            ("GET", f"/conversations?limit={raw}", None),
            ("GET", f"/conversations/{chat}/messages?after_seq={raw}", None),
            ("GET", f"/conversations/{chat}/messages?before_seq={raw}", None),
            ("GET", f"/conversations/{raw}/messages", None),
            ("PATCH", f"/conversations/{raw}", {"title": "t"}),
            ("POST", f"/conversations/{raw}/accept", None),
            ("DELETE", f"/conversations/{chat}/members/{raw}", None),
            ("PATCH", f"/conversations/{chat}/members/{raw}", {"role": "admin"}),
            ("PATCH", f"/conversations/{chat}/members/{raw}", {"role": injection}),
            ("DELETE", f"/devices/{raw}", None),
            ("POST", "/blocks", {"user_id": injection}),
            ("DELETE", f"/blocks/{raw}", None),
            ("POST", "/auth/verify", {"challenge_id": injection, "code": injection,
                                      "device_name": "phone"}),
            ("POST", "/auth/refresh", {"refresh_token": injection}),
        ]:
            status, reply = api.call(method, path, body, alice)

            assert_client_error(status, reply, f"{method} {path}: {injection}")
        assert_only_changed(before, row_counts(api.db))


# --- frames -------------------------------------------------------------------------------------


@pytest.fixture
def world(mysql_db: Database, clock) -> World:
    push = RecordingPush()
    return World(Context(db=mysql_db, push=push, clock=clock, limiter=NoLimits(),
                         keys=TEST_KEYS), push)


def test_a_message_body_is_stored_verbatim(world):
    alice, bob = world.person(), world.person()
    phone, bobs_phone = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    for n, injection in enumerate(INJECTIONS, start=1):
        before = row_counts(world.ctx.db)
        world.forget_frames()

        world.send(phone, chat, body=injection)

        assert world.last(phone, "sent")["seq"] == n, injection
        assert world.last(bobs_phone, "message")["body"] == injection
        world.frame(bobs_phone, "sync", cursors={chat: n - 1})
        assert [m["body"] for m in world.last(bobs_phone, "sync")["conversations"][0][
            "messages"]] == [injection]
        assert one_column(world.ctx.db, "SELECT body FROM messages WHERE conversation_id = %s"
                          " AND seq = %s", chat, n) == injection
        assert_only_changed(before, row_counts(world.ctx.db), messages=1, idempotency_keys=1)


def test_ids_in_frames_refuse_injection_strings_and_a_req_comes_back_verbatim(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    for injection in INJECTIONS:
        before = row_counts(world.ctx.db)
        world.forget_frames()
        world.ctx.clock.advance(seconds=10)  # a fresh budget for typing frames

        world.send(phone, chat, client_msg_id=injection)
        world.send(phone, injection)
        for action in ("ack", "read", "unsend"):
            world.frame(phone, action, conversation_id=injection, seq=1)
        world.frame(phone, "typing", conversation_id=injection, active=True)
        world.frame(phone, "sync", cursors={injection: 0})
        world.frame(phone, "ping", req=injection)

        replies = world.received(phone)
        assert [reply["type"] for reply in replies] == ["error"] * 7 + ["pong"], injection
        assert {reply["code"] for reply in replies[:7]} <= {"bad_request", "not_found"}
        assert replies[-1]["req"] == injection
        assert_only_changed(before, row_counts(world.ctx.db))
