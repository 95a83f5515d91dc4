"""`GET /me/export` (PROTOCOL "Safety, management and the account"): everything stored about the
caller, as JSON, and nothing of what others sent."""

from __future__ import annotations

import json

import pytest

from chalicelib.errors import RateLimited
from chalicelib.services import account, auth
from chalicelib.storage import outbox
from tests.integration.account_world import (
    IP,
    account_world,
    chat,
    sign_up,
    texted,
)
from tests.integration.messaging_world import World
from tests.support.fakes import RecordingPush


@pytest.fixture
def push() -> RecordingPush:
    return RecordingPush()


@pytest.fixture
def world(mysql_db, clock, push) -> World:
    return account_world(mysql_db, clock, push)


def test_the_export_holds_profile_settings_devices_conversations_own_messages_and_blocks(world):
    me, partner, third = sign_up(world), sign_up(world), sign_up(world)
    laptop = auth.verify_code(auth.request_code(me.phone, IP, world.ctx)["challenge_id"],
                              texted(world.ctx, me.phone), "laptop", world.ctx)
    auth.logout(auth.authenticate(f"Bearer {laptop.access_token}", world.ctx), world.ctx)
    account.update_me(me.id, {"display_name": "Ada", "read_receipts": False}, world.ctx)
    direct = chat(world, me, partner)
    group = chat(world, third, me, partner, title="trip")
    world.send(me.caller, direct, "mine in the direct chat", client_msg_id="client-1")
    world.send(partner.caller, direct, "the partner's secret")
    world.send(third.caller, group, "the third's secret")
    world.send(me.caller, group, "mine in the group", client_msg_id="client-2")
    world.ctx.clock.advance(seconds=3000)
    short = chat(world, me, third)
    world.sql("UPDATE conversations SET ttl_seconds = 10 WHERE id = %s", short)
    world.send(me.caller, short, "gone by export time", client_msg_id="client-3")
    world.ctx.clock.advance(seconds=20)
    account.block(me.id, {"user_id": third.id}, world.ctx)
    account.block(partner.id, {"user_id": me.id}, world.ctx)  # theirs, not mine

    export = account.export(me.id, world.ctx)

    assert export["exported_at"] == world.ctx.clock.now_ms()
    assert export["profile"]["id"] == me.id and export["profile"]["phone"] == me.phone
    assert export["profile"]["display_name"] == "Ada"
    assert export["settings"] == {"message_requests": True, "read_receipts": False}
    assert [(d["id"], d["name"], d["revoked_at"] is not None) for d in export["devices"]] == [
        (me.session.device_id, "phone", False), (laptop.device_id, "laptop", True)]
    listed = {c["id"]: c for c in export["conversations"]}
    assert set(listed) == {direct, group, short}
    assert {m["user_id"] for m in listed[group]["members"]} == {me.id, partner.id, third.id}
    assert all("last_message" not in c for c in export["conversations"])
    assert [(m["conversation_id"], m["client_msg_id"], m["body"])
            for m in sorted(export["messages"], key=lambda m: m["client_msg_id"])] == [
        (direct, "client-1", "mine in the direct chat"), (group, "client-2", "mine in the group")]
    assert set(export["messages"][0]) == {"conversation_id", "seq", "client_msg_id", "body",
                                          "created_at", "expires_at"}
    assert [b["user_id"] for b in export["blocks"]] == [third.id]
    assert export["truncated"] == {"conversations": False, "messages_in": []}
    text = json.dumps(export)
    assert "secret" not in text
    assert partner.session.device_id not in text


def test_a_block_on_a_deleted_account_is_exported_without_a_user(world):
    me, other = sign_up(world), sign_up(world)
    account.block(me.id, {"user_id": other.id}, world.ctx)
    world.sql("UPDATE blocks SET blocked_user_id = NULL WHERE blocker_id = %s", me.id)

    (block,) = account.export(me.id, world.ctx)["blocks"]

    assert (block["user_id"], block["phone"]) == (None, None)


def test_a_long_history_is_capped_per_conversation_with_the_newest_kept(world, monkeypatch):
    monkeypatch.setattr(account, "EXPORT_MESSAGES_PER_CONVERSATION", 2)
    me, partner = sign_up(world), sign_up(world)
    direct = chat(world, me, partner)
    for n in range(3):
        world.send(me.caller, direct, f"number {n}")

    export = account.export(me.id, world.ctx)

    assert [m["body"] for m in export["messages"]] == ["number 1", "number 2"]
    assert export["truncated"]["messages_in"] == [direct]


def test_the_byte_budget_keeps_the_newest_messages(world, monkeypatch):
    monkeypatch.setattr(account, "EXPORT_BODY_BYTES", 25)
    me, partner = sign_up(world), sign_up(world)
    direct = chat(world, me, partner)
    for n in range(3):
        world.send(me.caller, direct, f"message {n}")  # 9 bytes each

    export = account.export(me.id, world.ctx)

    assert [m["body"] for m in export["messages"]] == ["message 1", "message 2"]
    assert export["truncated"]["messages_in"] == [direct]


def test_exports_are_rate_limited_per_user(world):
    me = sign_up(world)
    for _ in range(5):
        account.export(me.id, world.ctx)
    with pytest.raises(RateLimited):
        account.export(me.id, world.ctx)


def test_the_export_route_needs_a_session(client, mysql_db):
    phone = "+14155550178"
    headers = {"Content-Type": "application/json"}
    challenge = json.loads(client.http.post("/auth/otp", headers=headers,
                                            body=json.dumps({"phone": phone})).body)
    code = mysql_db.run_read("t", outbox.sms_for_phone, phone)[0].code
    session = json.loads(client.http.post("/auth/verify", headers=headers, body=json.dumps(
        {"challenge_id": challenge["challenge_id"], "code": code})).body)

    assert client.http.get("/me/export").status_code == 401
    reply = client.http.get("/me/export",
                            headers={"Authorization": f"Bearer {session['access_token']}"})
    assert reply.status_code == 200
    assert json.loads(reply.body)["profile"]["phone"] == phone
