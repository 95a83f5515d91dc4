"""Consent and blocks (PROTOCOL "Safety, management and the account"): a stranger learns
nothing about a phone until its owner accepts, and a block silences the blocked one.

Finding 1 of the safety review (stalking and enumeration) is reproduced here: on the code
before consent, a stranger's chat showed a registered user's `last_seen_at` (a pending one's
was null), their `online`, and sent them live `presence` frames."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.errors import Forbidden, InvalidInput, NotFound
from chalicelib.services import account, conversations, presence
from chalicelib.services.context import Context
from chalicelib.services.limits import NoLimits
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush

HIDDEN = ("display_name", "online", "last_seen_at", "read_seq", "delivered_seq")


@pytest.fixture
def push() -> RecordingPush:
    return RecordingPush()


@pytest.fixture
def world(db, clock, push) -> World:
    return World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS),
                 push)


def member(view: dict, user_id: str) -> dict:
    return next(m for m in view["members"] if m["user_id"] == user_id)


def listed(world: World, person) -> list[dict]:
    return conversations.list_for(person.id, {}, world.ctx)["conversations"]


# --- a request reveals nothing until accepted -----------------------------------------------


def test_a_strangers_chat_is_a_request_and_shows_none_of_the_owners_fields(world):
    stranger, victim = world.person(), world.person()
    account.update_me(victim.id, {"display_name": "Victim"}, world.ctx)
    world.device(victim)  # online right now
    chat = world.chat(stranger, victim, accepted=False)

    (mine,) = listed(world, victim)
    (theirs,) = listed(world, stranger)
    assert mine["id"] == chat and mine["request"] is True
    assert theirs["request"] is False
    assert {field: member(theirs, victim.id)[field] for field in HIDDEN} == dict.fromkeys(HIDDEN)


def test_the_stranger_gets_no_presence_frame_until_the_owner_accepts(world):
    stranger, victim = world.person(), world.person()
    watcher = world.device(stranger)
    chat = world.chat(stranger, victim, accepted=False)
    world.forget_frames()

    victim_phone = world.device(victim)
    world.disconnect(victim_phone)
    assert world.received(watcher, "presence") == []

    victim_phone = world.device(victim)
    conversations.accept(victim.id, chat, world.ctx)

    (revealed,) = world.received(watcher, "presence")
    assert (revealed["user_id"], revealed["online"]) == (victim.id, True)
    assert member(listed(world, stranger)[0], victim.id)["online"] is True


def test_sending_in_a_request_accepts_it(world):
    stranger, owner = world.person(), world.person()
    chat = world.chat(stranger, owner, accepted=False)
    owner_phone = world.device(owner)

    world.send(owner_phone, chat, body="who is this?")

    assert world.last(owner_phone, "sent")["seq"] == 1
    assert listed(world, owner)[0]["request"] is False
    assert member(listed(world, stranger)[0], owner.id)["online"] is True


def test_accepting_tells_the_others_how_far_the_member_has_read(world):
    stranger, owner = world.person(), world.person()
    stranger_phone, owner_phone = world.device(stranger), world.device(owner)
    chat = world.chat(stranger, owner, accepted=False)
    world.send(stranger_phone, chat, body="hello?")
    world.frame(owner_phone, "read", conversation_id=chat, seq=1)
    assert world.received(stranger_phone, "receipt") == []

    conversations.accept(owner.id, chat, world.ctx)

    receipts = world.received(stranger_phone, "receipt")
    assert sorted((r["kind"], r["seq"]) for r in receipts) == [("delivered", 1), ("read", 1)]


def test_a_request_cannot_be_changed_before_it_is_accepted(world):
    stranger, owner = world.person(), world.person()
    chat = world.chat(stranger, owner, accepted=False)

    with pytest.raises(Forbidden):
        conversations.update(owner.id, chat, {"ttl_seconds": 60}, world.ctx)
    conversations.accept(owner.id, chat, world.ctx)
    assert conversations.update(owner.id, chat, {"ttl_seconds": 60},
                                world.ctx)["ttl_seconds"] == 60


def test_acks_and_reads_of_a_request_send_no_receipts(world):
    stranger, owner = world.person(), world.person()
    stranger_phone, owner_phone = world.device(stranger), world.device(owner)
    chat = world.chat(stranger, owner, accepted=False)
    world.send(stranger_phone, chat, body="hello?")
    world.forget_frames()

    world.frame(owner_phone, "ack", conversation_id=chat, seq=1)
    world.frame(owner_phone, "read", conversation_id=chat, seq=1)

    assert world.received(stranger_phone, "receipt") == []
    assert world.received(owner_phone, "unread")  # the owner's own count still moves


def test_people_who_share_an_accepted_chat_start_new_ones_accepted(world):
    alice, bob, carol = world.person(), world.person(), world.person()
    world.chat(alice, bob)  # accepted by both

    group = world.chat(alice, bob, carol, accepted=False)

    by_id = {c["id"]: c for c in listed(world, bob)}
    assert by_id[group]["request"] is False
    assert {c["id"]: c for c in listed(world, carol)}[group]["request"] is True


def test_turning_message_requests_off_accepts_everyone(world):
    stranger, open_person = world.person(), world.person()
    account.update_me(open_person.id, {"message_requests": False}, world.ctx)

    world.chat(stranger, open_person, accepted=False)

    assert listed(world, open_person)[0]["request"] is False


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(["registered", "online", "pending", "never_seen"]),
                      min_size=1, max_size=5))
def test_a_stranger_sees_the_same_for_registered_pending_and_never_seen_phones(world, kinds):
    stranger = world.person()
    targets = []
    for kind in kinds:
        if kind == "never_seen":
            targets.append(world.new_phone())
            continue
        person = world.person()
        if kind == "pending":
            world.make_pending(person)
        if kind == "online":
            world.device(person)
        account.update_me(person.id, {"display_name": "Somebody"}, world.ctx)
        targets.append(person.phone)

    views = [conversations.create(stranger.id, {"members": [phone]}, world.ctx)[0]
             for phone in targets]
    group, _ = conversations.create(stranger.id, {"members": targets, "title": "g"}, world.ctx)

    def shown(view: dict) -> list[dict]:
        return [{key: value for key, value in m.items() if key not in ("user_id", "phone")}
                for m in view["members"] if m["user_id"] != stranger.id]

    expected = {"role": "member", **dict.fromkeys(HIDDEN)}
    for view in [*views, group]:
        assert all(entry == expected for entry in shown(view))
        assert view["last_message"] is None and view["request"] is False
    assert {len(v["id"]) for v in views} == {26}
    assert all(len(m["user_id"]) == 26 for m in group["members"])


# --- decline and blocks ------------------------------------------------------------------


def test_decline_leaves_the_request_and_the_starter_sees_no_difference(world):
    stranger, owner = world.person(), world.person()
    chat = world.chat(stranger, owner, accepted=False)
    before = member(listed(world, stranger)[0], owner.id)

    conversations.decline(owner.id, chat, {}, world.ctx)

    assert listed(world, owner) == []
    assert member(listed(world, stranger)[0], owner.id) == before
    owner_phone = world.device(owner)
    world.send(owner_phone, chat, body="still here?")
    assert world.last(owner_phone, "error")["code"] == "not_found"


def test_an_accepted_conversation_cannot_be_declined(world):
    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)

    with pytest.raises(InvalidInput):
        conversations.decline(bob.id, chat, {}, world.ctx)


def test_decline_with_block_blocks_the_starter_whose_sends_are_then_forbidden(world):
    stranger, owner = world.person(), world.person()
    stranger_phone, owner_phone = world.device(stranger), world.device(owner)
    chat = world.chat(stranger, owner, accepted=False)
    world.forget_frames()

    conversations.decline(owner.id, chat, {"block": True}, world.ctx)
    world.send(stranger_phone, chat, body="answer me")

    assert world.last(stranger_phone, "error")["code"] == "forbidden"
    assert world.received(owner_phone, "message") == []
    assert world.count("messages") == 0
    (blocked,) = account.list_blocks(owner.id, world.ctx)["blocks"]
    assert blocked["user_id"] == stranger.id and blocked["display_name"] is None
    with pytest.raises(Forbidden):
        conversations.create(stranger.id, {"members": [owner.phone, world.new_phone()]},
                             world.ctx)


def test_a_blocked_user_cannot_retitle_or_retime_the_direct_chat_to_reach_the_blocker(world):
    """Found by the authorization matrix: the blocked one's title change reached the blocker
    as a `conversation` frame, text past the block that no rate limit bounded."""
    alice, bob = world.person(), world.person()
    alice_phone = world.device(alice)
    chat = world.chat(alice, bob)
    account.block(alice.id, {"user_id": bob.id}, world.ctx)
    world.forget_frames()

    for change in ({"title": "open me"}, {"ttl_seconds": 10}):
        with pytest.raises(Forbidden):
            conversations.update(bob.id, chat, change, world.ctx)

    assert world.received(alice_phone) == []
    view = conversations.view_one(alice.id, chat, world.ctx)
    assert (view["title"], view["ttl_seconds"]) == (None, 3600)
    assert conversations.update(alice.id, chat, {"title": "ours"}, world.ctx)["title"] == "ours"


def test_a_retry_of_a_send_stored_before_a_block_is_still_its_duplicate(world):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    world.send(phone, chat, body="before", client_msg_id="before-block")
    account.block(bob.id, {"user_id": alice.id}, world.ctx)

    world.send(phone, chat, body="before", client_msg_id="before-block", req="retry")
    world.send(phone, chat, body="after", client_msg_id="after-block1", req="new")

    assert world.last(phone, "sent")["duplicate"] is True
    assert world.last(phone, "error")["req"] == "new"
    assert world.last(phone, "error")["code"] == "forbidden"


def test_blocking_stops_presence_both_ways_and_unblocking_restores_it(world):
    alice, bob = world.person(), world.person()
    alice_phone = world.device(alice)
    chat = world.chat(alice, bob)
    account.block(alice.id, {"user_id": bob.id}, world.ctx)
    world.forget_frames()

    bob_phone = world.device(bob)

    assert world.received(alice_phone, "presence") == []
    assert member(conversations.view_one(alice.id, chat, world.ctx), bob.id)["online"] is None
    assert member(conversations.view_one(bob.id, chat, world.ctx), alice.id)["online"] is None

    account.unblock(alice.id, bob.id, world.ctx)
    world.disconnect(bob_phone)
    assert world.last(alice_phone, "presence")["online"] is False
    assert account.list_blocks(alice.id, world.ctx) == {"blocks": []}
    with pytest.raises(NotFound):
        account.unblock(alice.id, bob.id, world.ctx)


def test_in_a_shared_group_a_blockers_devices_are_not_pushed_the_blocked_ones_messages(world):
    alice, bob, carol = world.person(), world.person(), world.person()
    alice_phone, bob_phone, carol_phone = (world.device(p) for p in (alice, bob, carol))
    group = world.chat(alice, bob, carol)
    account.block(carol.id, {"user_id": bob.id}, world.ctx)
    world.forget_frames()

    world.send(bob_phone, group, body="hi all")

    assert len(world.received(alice_phone, "message")) == 1
    assert world.received(carol_phone, "message") == []
    assert world.last(bob_phone, "sent")["duplicate"] is False


@pytest.mark.parametrize("who_blocks", ["the reader", "the other"])
def test_no_receipts_across_a_block_either_way(world, who_blocks):
    alice, bob, carol = world.person(), world.person(), world.person()
    alice_phone, bob_phone, carol_phone = (world.device(p) for p in (alice, bob, carol))
    group = world.chat(alice, bob, carol)
    world.send(alice_phone, group, body="hello both")
    blocker, blocked = (bob, carol) if who_blocks == "the reader" else (carol, bob)
    account.block(blocker.id, {"user_id": blocked.id}, world.ctx)
    world.forget_frames()

    world.frame(bob_phone, "ack", conversation_id=group, seq=1)
    world.frame(bob_phone, "read", conversation_id=group, seq=1)

    assert sorted(r["kind"] for r in world.received(alice_phone, "receipt")) == [
        "delivered", "read"]
    assert world.received(carol_phone, "receipt") == []


@pytest.mark.parametrize("who_blocks", ["the one accepting", "the other"])
def test_accepting_tells_nobody_across_a_block_how_far_the_member_has_read(world, who_blocks):
    stranger, owner, carol = world.person(), world.person(), world.person()
    stranger_phone, owner_phone, carol_phone = (world.device(p) for p in (stranger, owner, carol))
    group = world.chat(stranger, owner, carol, accepted=False)
    world.send(stranger_phone, group, body="hello both")
    world.frame(owner_phone, "read", conversation_id=group, seq=1)
    blocker, blocked = (owner, carol) if who_blocks == "the one accepting" else (carol, owner)
    account.block(blocker.id, {"user_id": blocked.id}, world.ctx)
    world.forget_frames()

    conversations.accept(owner.id, group, world.ctx)

    assert sorted(r["kind"] for r in world.received(stranger_phone, "receipt")) == [
        "delivered", "read"]
    assert world.received(carol_phone, "receipt") == []


def test_a_block_survives_the_blocked_phone_signing_up_again_as_a_new_user(world):
    owner, pest = world.person(), world.person()
    account.block(owner.id, {"user_id": pest.id}, world.ctx)

    reborn = world.reincarnate(pest)  # the account is gone; the phone signs up anew

    assert reborn.id != pest.id
    assert [b["user_id"] for b in account.list_blocks(owner.id, world.ctx)["blocks"]] == [
        reborn.id]
    with pytest.raises(Forbidden):
        conversations.create(reborn.id, {"members": [owner.phone]}, world.ctx)
    assert world.rows("blocks")[0]["blocked_key"] != pest.phone  # no row keeps the number


def test_blocking_yourself_or_nobody_is_refused(world):
    alice = world.person()

    with pytest.raises(InvalidInput):
        account.block(alice.id, {"user_id": alice.id}, world.ctx)
    with pytest.raises(NotFound):
        account.block(alice.id, {"user_id": "01NOSUCHUSER00000000000000"}, world.ctx)


# --- settings -----------------------------------------------------------------------------


def test_me_carries_the_display_name_and_both_settings_with_their_defaults(world):
    alice = world.person()

    assert account.me(alice.id, world.ctx) == {
        "id": alice.id, "phone": alice.phone, "display_name": None,
        "settings": {"message_requests": True, "read_receipts": True}}
    changed = account.update_me(alice.id, {"display_name": "  Alice  ", "read_receipts": False},
                                world.ctx)
    assert changed["display_name"] == "Alice"
    assert changed["settings"] == {"message_requests": True, "read_receipts": False}
    assert account.update_me(alice.id, {"display_name": "👩\u200d💻 Ada"},
                             world.ctx)["display_name"] == "👩\u200d💻 Ada"
    assert account.update_me(alice.id, {"display_name": None}, world.ctx)["display_name"] is None


@pytest.mark.parametrize("fields", [
    {}, {"display_name": ""}, {"display_name": "   "}, {"display_name": "x" * 65},
    {"display_name": "\ud800"},
    {"display_name": "line\nbreak"}, {"display_name": "\u202eevil"}, {"display_name": 7},
    {"read_receipts": "no"}, {"message_requests": 1},
])
def test_bad_profile_changes_are_refused_and_change_nothing(world, fields):
    alice = world.person()

    with pytest.raises(InvalidInput):
        account.update_me(alice.id, fields, world.ctx)
    assert account.me(alice.id, world.ctx)["display_name"] is None


def test_read_receipts_off_hides_reads_both_ways_and_keeps_delivered(world):
    alice, bob = world.person(), world.person()
    alice_phone, bob_phone = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    world.send(alice_phone, chat, body="one")
    world.send(bob_phone, chat, body="two")
    account.update_me(bob.id, {"read_receipts": False}, world.ctx)
    world.forget_frames()

    world.frame(bob_phone, "read", conversation_id=chat, seq=1)
    world.frame(alice_phone, "read", conversation_id=chat, seq=2)

    assert {r["kind"] for r in world.received(alice_phone, "receipt")} == {"delivered"}
    assert {r["kind"] for r in world.received(bob_phone, "receipt")} == {"delivered"}
    assert member(conversations.view_one(alice.id, chat, world.ctx), bob.id)["read_seq"] is None
    assert member(conversations.view_one(bob.id, chat, world.ctx), alice.id)["read_seq"] is None
    assert member(conversations.view_one(bob.id, chat, world.ctx), bob.id)["read_seq"] == 1


def test_presence_reaches_only_accepted_contacts(world):
    alice, bob, stranger = world.person(), world.person(), world.person()
    bob_phone, stranger_phone = world.device(bob), world.device(stranger)
    world.chat(alice, bob)
    world.chat(stranger, alice, accepted=False)  # a request alice never answered
    world.forget_frames()

    presence.announce(alice.id, online=True, last_seen_at=1, ctx=world.ctx)

    assert len(world.received(bob_phone, "presence")) == 1
    assert world.received(stranger_phone, "presence") == []
