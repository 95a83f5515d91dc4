"""Account deletion (PROTOCOL "Safety, management and the account": `POST /me/delete-challenge`,
`DELETE /me`), on real MariaDB: afterwards no row anywhere holds the user's id, phone, devices
or connections; their sockets are closed and their tokens dead; the others keep their
conversations; the phone can sign up again as somebody new."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.errors import InvalidInput, NotFound, Unauthorized
from chalicelib.services import account, auth, conversations, erasure, membership, reading
from chalicelib.services.auth import OTP_ATTEMPTS
from chalicelib.services.limits import SlidingWindowLimiter, load_policies
from chalicelib.storage import conversations as storage_conversations
from chalicelib.storage import erasure as storage_erasure
from chalicelib.storage import outbox
from tests.integration.account_world import (
    IP,
    Member,
    account_world,
    chat,
    delete,
    deletion_code,
    sign_up,
    texted,
)
from tests.integration.messaging_world import World
from tests.support.fakes import RecordingPush

TEXT_TYPES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext")


@pytest.fixture
def push() -> RecordingPush:
    return RecordingPush()


@pytest.fixture
def world(mysql_db, clock, push) -> World:
    return account_world(mysql_db, clock, push)


@pytest.fixture
def any_world(db, clock, push) -> World:
    """On MariaDB and on SQLite: deletion's SQL is in the subset both speak."""
    return account_world(db, clock, push)


def leave(world: World, conversation_id: str, member: Member) -> None:
    """As the members' route will do it: the storage primitive already on main."""
    def leave_txn(txn):
        me = storage_conversations.get_participant(txn, conversation_id, member.id)
        storage_conversations.remove_participant(txn, conversation_id, member.id, me.role)

    world.ctx.db.run_transaction("t", leave_txn)


def where_held(world: World, needles: list[str]) -> set[tuple[str, str]]:
    """(table, column) of every text column of every table (listed from information_schema,
    so a table added later is covered) in which some row holds one of the needles."""
    def scan(txn) -> set[tuple[str, str]]:
        txn.execute("SELECT TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.COLUMNS"
                    " WHERE TABLE_SCHEMA = DATABASE() AND DATA_TYPE IN ("
                    + ", ".join(["%s"] * len(TEXT_TYPES)) + ") ORDER BY 1, 2", TEXT_TYPES)
        columns = [(row["t"], row["c"]) for row in txn.fetchall()]
        assert {"users", "messages", "participants", "devices"} <= {t for t, _ in columns}
        found = set()
        for table, column in columns:
            test = " OR ".join([f"LOCATE(%s, `{column}`) > 0"] * len(needles))
            txn.execute(f"SELECT 1 AS hit FROM `{table}` WHERE {test} LIMIT 1", needles)
            if txn.fetchone():
                found.add((table, column))
        return found

    return world.ctx.db.run_read("t", scan)


def traces(member: Member) -> list[str]:
    return [member.id, member.phone, member.session.device_id, member.caller.connection_id]


def history(world: World, member: Member, conversation_id: str) -> list[dict[str, Any]]:
    return reading.history(member.id, conversation_id, {}, world.ctx)["messages"]


# --- no row is left ---------------------------------------------------------------------------


def test_no_row_of_any_table_holds_the_deleted_users_id_phone_devices_or_sockets(world):
    leaver, partner, third, blocker = (sign_up(world) for _ in range(4))
    second_device = auth.verify_code(
        auth.request_code(leaver.phone, IP, world.ctx)["challenge_id"],
        texted(world.ctx, leaver.phone), "laptop", world.ctx)
    auth.refresh(second_device.refresh_token, world.ctx)  # a rotated token row too
    direct = chat(world, leaver, partner)
    owned = chat(world, leaver, partner, third, title="owned")
    theirs = chat(world, third, leaver, partner, title="theirs")
    left_before = chat(world, partner, leaver, third, title="left before")
    for conversation_id in (direct, owned, theirs, left_before):
        world.send(leaver.caller, conversation_id, "a message long enough to be counted as spam")
    leave(world, left_before, leaver)  # their message stays there, and must go too
    account.update_me(leaver.id, {"display_name": "Leaver"}, world.ctx)
    account.block(leaver.id, {"user_id": third.id}, world.ctx)
    account.block(blocker.id, {"user_id": leaver.id}, world.ctx)
    needles = traces(leaver) + [second_device.device_id]

    before = where_held(world, needles)
    assert {("users", "id"), ("users", "phone"), ("devices", "id"), ("messages", "sender_id"),
            ("participants", "user_id"), ("idempotency_keys", "sender_id"),
            ("conversations", "direct_key"), ("conversations", "created_by"),
            ("connections", "id"), ("refresh_tokens", "device_id"), ("blocks", "blocker_id"),
            ("blocks", "blocked_user_id"), ("otp_challenges", "phone"), ("sms_outbox", "phone"),
            ("rate_limit_windows", "bucket")} <= before

    delete(world, leaver)

    assert where_held(world, needles) == set()
    assert world.count("blocks") == 1  # the block placed on the phone stays, by its HMAC


def test_their_sockets_are_closed_and_every_token_is_dead(world, push):
    leaver = sign_up(world)
    other_device = sign_up(world, leaver.phone)

    delete(world, leaver)

    assert sorted(push.disconnected) == sorted([leaver.caller.connection_id,
                                                other_device.caller.connection_id])
    for session in (leaver.session, other_device.session):
        with pytest.raises(Unauthorized):
            auth.authenticate(f"Bearer {session.access_token}", world.ctx)
        with pytest.raises(Unauthorized):
            auth.refresh(session.refresh_token, world.ctx)
    with pytest.raises(NotFound):
        account.me(leaver.id, world.ctx)


# --- the others keep their conversations ---------------------------------------------------------


def test_the_direct_partner_keeps_the_conversation_without_the_deleted_users_messages(any_world):
    leaver, partner = sign_up(any_world), sign_up(any_world)
    direct = chat(any_world, leaver, partner)
    any_world.send(leaver.caller, direct, "mine one")
    any_world.send(partner.caller, direct, "theirs")
    any_world.send(leaver.caller, direct, "mine two")
    any_world.forget_frames()

    delete(any_world, leaver)

    frames = any_world.received(partner.caller)
    assert {"type": "member", "conversation_id": direct, "user_id": leaver.id,
            "change": "left", "by": leaver.id} in frames
    expired = any_world.last(partner.caller, "expired")
    assert (expired["ranges"], expired["reason"]) == ([[1, 1], [3, 3]], "unsent")
    assert [m["body"] for m in history(any_world, partner, direct)] == ["theirs"]
    (listed,) = conversations.list_for(partner.id, {}, any_world.ctx)["conversations"]
    assert listed["id"] == direct and listed["kind"] == "direct"
    assert [m["user_id"] for m in listed["members"]] == [partner.id]
    any_world.send(partner.caller, direct, "still here")
    assert any_world.last(partner.caller, "sent")["seq"] == 4


def test_a_group_they_owned_passes_to_the_longest_standing_admin_else_member(any_world):
    leaver, first, second = sign_up(any_world), sign_up(any_world), sign_up(any_world)
    group = chat(any_world, leaver, first, second, title="group")
    any_world.sql("UPDATE participants SET role = 'admin' WHERE conversation_id = %s"
              " AND user_id = %s", group, second.id)
    any_world.forget_frames()

    delete(any_world, leaver)

    roles = {p.user_id: p.role for p in any_world.ctx.db.run_read(
        "t", storage_conversations.list_participants, group)}
    assert roles == {first.id: "member", second.id: "owner"}
    assert {"type": "member", "conversation_id": group, "user_id": second.id,
            "change": "role", "role": "owner", "by": leaver.id} in any_world.received(first.caller)
    assert {"type": "member", "conversation_id": group, "user_id": leaver.id,
            "change": "left", "by": leaver.id} in any_world.received(second.caller)
    any_world.send(first.caller, group, "we go on")
    assert any_world.last(second.caller, "message")["body"] == "we go on"


def test_a_request_they_never_accepted_goes_without_telling_its_starter(any_world):
    leaver, stranger = sign_up(any_world), sign_up(any_world)
    view, _ = conversations.create(stranger.id, {"members": [leaver.phone]}, any_world.ctx)
    assert any_world.ctx.db.run_read("t", storage_conversations.get_participant, view["id"],
                                     leaver.id).consent == "request"
    any_world.forget_frames()

    delete(any_world, leaver)

    assert any_world.received(stranger.caller) == []
    (listed,) = conversations.list_for(stranger.id, {}, any_world.ctx)["conversations"]
    assert [m["user_id"] for m in listed["members"]] == [stranger.id]


def test_a_group_they_were_last_in_is_deleted_with_everything_in_it(any_world):
    leaver, other = sign_up(any_world), sign_up(any_world)
    group = chat(any_world, leaver, other, title="group")
    any_world.send(other.caller, group, "from the other")
    leave(any_world, group, other)

    delete(any_world, leaver)

    for table, column in (("conversations", "id"), ("messages", "conversation_id"),
                          ("participants", "conversation_id")):
        assert [r for r in any_world.rows(table) if r[column] == group] == []


def test_a_group_addition_racing_the_deletion_never_names_the_deleted_id(world, monkeypatch):
    """The addition reads the phone's user while the deletion is under way: it waits for the
    deletion to end, then adds the phone as a new pending user, never the deleted id."""
    leaver, owner, first, second = (sign_up(world) for _ in range(4))
    group = chat(world, owner, first, second, title="group")
    code = deletion_code(world, leaver)
    deleting, finish = threading.Event(), threading.Event()
    delete_connections = storage_erasure.delete_connections

    def paused(txn, user_id):  # the deletion holds the user's row here, not yet committed
        deleting.set()
        assert finish.wait(10)
        return delete_connections(txn, user_id)

    monkeypatch.setattr(storage_erasure, "delete_connections", paused)
    deletion = threading.Thread(target=erasure.delete_account,
                                args=(leaver.principal, code, world.ctx))
    deletion.start()
    assert deleting.wait(10)
    added: list[dict] = []
    addition = threading.Thread(target=lambda: added.append(membership.add_members(
        owner.id, group, {"members": [leaver.phone]}, world.ctx)))
    addition.start()
    addition.join(0.5)
    waited = addition.is_alive()
    finish.set()
    deletion.join(10)
    addition.join(10)

    assert waited, "the addition must wait for the deletion's lock on the user"
    assert where_held(world, [leaver.id]) == set()
    (newcomer,) = [m for m in added[0]["members"] if m["phone"] == leaver.phone]
    assert newcomer["user_id"] != leaver.id


def test_the_phone_signs_up_again_as_a_new_user_with_nothing_of_the_old_one(world):
    leaver, partner, blocker = sign_up(world), sign_up(world), sign_up(world)
    chat(world, leaver, partner)
    account.block(blocker.id, {"user_id": leaver.id}, world.ctx)

    delete(world, leaver)
    again = sign_up(world, leaver.phone)

    assert again.id != leaver.id
    assert account.me(again.id, world.ctx) == {
        "id": again.id, "phone": leaver.phone, "display_name": None,
        "settings": {"message_requests": True, "read_receipts": True}}
    assert conversations.list_for(again.id, {}, world.ctx)["conversations"] == []
    assert [b["user_id"] for b in account.list_blocks(blocker.id, world.ctx)["blocks"]] == [
        again.id]  # the block on the phone holds for whoever has it


# --- a code that is not the right one deletes nothing ----------------------------------------


def assert_nothing_deleted(world: World, member: Member) -> None:
    assert account.me(member.id, world.ctx)["id"] == member.id
    auth.authenticate(f"Bearer {member.session.access_token}", world.ctx)
    assert world.ctx.push.disconnected == []


def test_a_wrong_code_costs_an_attempt_and_deletes_nothing(world):
    leaver = sign_up(world)
    fields = deletion_code(world, leaver)
    wrong = "000000" if fields["code"] != "000000" else "111111"

    with pytest.raises(Unauthorized) as refused:
        erasure.delete_account(leaver.principal, {**fields, "code": wrong}, world.ctx)

    assert refused.value.details == {"attempts_left": OTP_ATTEMPTS - 1}
    assert_nothing_deleted(world, leaver)
    erasure.delete_account(leaver.principal, fields, world.ctx)  # the right one still works
    with pytest.raises(NotFound):
        account.me(leaver.id, world.ctx)


def test_a_login_code_does_not_delete_and_a_deletion_code_does_not_log_in(world):
    leaver = sign_up(world)
    login = auth.request_code(leaver.phone, IP, world.ctx)
    login_code = texted(world.ctx, leaver.phone)

    with pytest.raises(Unauthorized) as refused:
        erasure.delete_account(leaver.principal, {"challenge_id": login["challenge_id"],
                                                  "code": login_code}, world.ctx)
    assert "attempts_left" not in refused.value.details
    fields = deletion_code(world, leaver)
    with pytest.raises(Unauthorized):
        auth.verify_code(fields["challenge_id"], fields["code"], "thief", world.ctx)

    assert_nothing_deleted(world, leaver)
    auth.verify_code(login["challenge_id"], login_code, "laptop", world.ctx)  # both unspent
    erasure.delete_account(leaver.principal, fields, world.ctx)


def test_another_users_deletion_code_deletes_neither(world):
    leaver, other = sign_up(world), sign_up(world)
    theirs = deletion_code(world, other)

    with pytest.raises(Unauthorized):
        erasure.delete_account(leaver.principal, theirs, world.ctx)

    assert_nothing_deleted(world, leaver)
    assert_nothing_deleted(world, other)


@pytest.mark.parametrize("fields", [{}, {"challenge_id": "x"}, {"code": "123456"},
                                    {"challenge_id": 5, "code": "123456"},
                                    {"challenge_id": "x", "code": "12345"}])
def test_missing_or_malformed_fields_are_bad_request(world, fields):
    leaver = sign_up(world)
    with pytest.raises(InvalidInput):
        erasure.delete_account(leaver.principal, fields, world.ctx)
    assert_nothing_deleted(world, leaver)


def test_the_deletion_code_is_texted_as_such_under_the_login_limits(world):
    leaver = sign_up(world)
    strict = replace(world.ctx, limiter=SlidingWindowLimiter(
        db=world.ctx.db, clock=world.ctx.clock,
        policies=load_policies({"RATE_OTP_PER_PHONE": "2/600"})))
    erasure.request_code(leaver.principal, IP, strict)  # the login code was the first
    (sms, *_) = world.ctx.db.run_read("t", outbox.sms_for_phone, leaver.phone)
    assert "DELETE" in sms.text
    with pytest.raises(Exception) as limited:
        erasure.request_code(leaver.principal, IP, strict)
    assert limited.value.code == "rate_limited"


# --- through the app: a body on DELETE reaches the view ----------------------------------------


def call(client, method: str, path: str, body: Any = None, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = client.http.request(method, path, headers=headers,
                                   body=json.dumps(body) if body is not None else b"")
    return response.status_code, json.loads(response.body) if response.body else None


def test_the_routes_delete_with_a_json_body_on_delete(client, mysql_db):
    phone = "+14155550177"

    def outbox_code() -> str:  # what the local stage's sender "texted"
        return mysql_db.run_read("t", outbox.sms_for_phone, phone)[0].code

    status, challenge = call(client, "POST", "/auth/otp", {"phone": phone})
    status, session = call(client, "POST", "/auth/verify", {
        "challenge_id": challenge["challenge_id"], "code": outbox_code()})
    assert status == 200, session
    token = session["access_token"]
    assert call(client, "POST", "/me/delete-challenge")[0] == 401
    status, challenge = call(client, "POST", "/me/delete-challenge", token=token)
    assert status == 202 and set(challenge) == {"challenge_id", "expires_in", "resend_after"}

    assert call(client, "DELETE", "/me", token=token)[0] == 400
    code = outbox_code()
    wrong = "000000" if code != "000000" else "111111"
    status, refused = call(client, "DELETE", "/me", {"challenge_id": challenge["challenge_id"],
                                                     "code": wrong}, token=token)
    assert (status, refused["error"]["code"]) == (401, "unauthorized")
    assert refused["error"]["attempts_left"] == OTP_ATTEMPTS - 1
    status, _ = call(client, "DELETE", "/me", {"challenge_id": challenge["challenge_id"],
                                               "code": code}, token=token)
    assert status == 204
    assert call(client, "GET", "/me", token=token)[0] == 401
