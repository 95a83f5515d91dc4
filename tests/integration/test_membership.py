"""Group membership and roles, and `conversation` frames (PROTOCOL "Safety, management and
the account"): who may add, remove and promote whom, where a new member's history starts,
what a removed one stops getting, and which frames reach which connections."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.errors import Forbidden, InvalidInput, NotFound
from chalicelib.services import account, conversations, membership, reading
from chalicelib.services.context import Context
from chalicelib.services.expiry import announce, purge_expired
from chalicelib.services.limits import NoLimits
from tests.integration.messaging_world import Person, World
from tests.integration.test_bad_input_property import assert_client_error_or_ok, odd_json, odd_text
from tests.integration.test_conversation_routes import Api
from tests.support.fakes import TEST_KEYS, RecordingPush


class CountingLimits(NoLimits):
    """Admits everything and remembers each hit: which limits a path charges."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, int]] = []

    def check_txn(self, txn, checks, now_ms, *, cost=1) -> None:
        self.hits += [(name, cost) for name, _ in checks]


@pytest.fixture
def push() -> RecordingPush:
    return RecordingPush()


@pytest.fixture
def limits() -> CountingLimits:
    return CountingLimits()


@pytest.fixture
def world(db, clock, push, limits) -> World:
    return World(Context(db=db, push=push, clock=clock, limiter=limits, keys=TEST_KEYS), push)


def add(world: World, by: Person, chat: str, *people: Person | str) -> dict:
    phones = [p if isinstance(p, str) else p.phone for p in people]
    return membership.add_members(by.id, chat, {"members": phones}, world.ctx)


def remove(world: World, by: Person, chat: str, who: Person) -> None:
    membership.remove_member(by.id, chat, who.id, world.ctx)


def make(world: World, by: Person, chat: str, who: Person, role: str) -> dict:
    return membership.change_role(by.id, chat, who.id, {"role": role}, world.ctx)


def roles(world: World, viewer: Person, chat: str) -> dict[str, str]:
    view = conversations.view_one(viewer.id, chat, world.ctx)
    return {m["user_id"]: m["role"] for m in view["members"]}


def participants(world: World) -> list[dict]:
    return sorted(world.rows("participants"),
                  key=lambda row: (row["conversation_id"], row["user_id"]))


def history(world: World, person: Person, chat: str) -> list[int]:
    page = reading.history(person.id, chat, {}, world.ctx)
    return [m["seq"] for m in page["messages"]]


@pytest.fixture
def trio(world):
    """Owner Olive, admin Adam, member Mia, in one accepted group."""
    olive, adam, mia = world.person(), world.person(), world.person()
    chat = world.chat(olive, adam, mia)
    make(world, olive, chat, adam, "admin")
    world.forget_frames()
    return chat, olive, adam, mia


# --- authorization ---------------------------------------------------------------------------


def test_a_non_participant_gets_not_found_on_every_membership_route(world, trio):
    chat, olive, adam, mia = trio
    outsider = world.person()
    before = participants(world)

    with pytest.raises(NotFound):
        add(world, outsider, chat, world.person())
    with pytest.raises(NotFound):
        remove(world, outsider, chat, mia)
    with pytest.raises(NotFound):
        make(world, outsider, chat, mia, "admin")
    with pytest.raises(NotFound):
        add(world, olive, "01NOSUCHCONVERSATION000000", world.person())
    assert participants(world) == before


def test_a_plain_member_is_forbidden_to_add_remove_or_change_roles(world, trio):
    chat, olive, adam, mia = trio
    before = participants(world)

    with pytest.raises(Forbidden):
        add(world, mia, chat, world.person())
    with pytest.raises(Forbidden):
        remove(world, mia, chat, adam)
    with pytest.raises(Forbidden):
        make(world, mia, chat, adam, "member")
    assert participants(world) == before


def test_an_admin_cannot_remove_an_admin_or_the_owner_nor_change_roles(world, trio):
    chat, olive, adam, mia = trio
    other_admin = world.person()
    add(world, olive, chat, other_admin)
    make(world, olive, chat, other_admin, "admin")
    before = participants(world)

    with pytest.raises(Forbidden):
        remove(world, adam, chat, olive)
    with pytest.raises(Forbidden):
        remove(world, adam, chat, other_admin)
    with pytest.raises(Forbidden):
        make(world, adam, chat, mia, "admin")
    assert participants(world) == before


def test_a_member_who_has_not_accepted_must_accept_first(world):
    olive, stranger, friend = world.person(), world.person(), world.person()
    chat = world.chat(olive, stranger, friend, accepted=False)
    make(world, olive, chat, stranger, "admin")  # an admin, but still a request

    with pytest.raises(Forbidden, match="accept"):
        add(world, stranger, chat, world.person())
    with pytest.raises(Forbidden, match="accept"):
        remove(world, stranger, chat, friend)

    conversations.accept(stranger.id, chat, world.ctx)
    add(world, stranger, chat, world.person())


def test_membership_changes_on_a_direct_conversation_are_bad_request(world):
    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)
    before = participants(world)

    with pytest.raises(InvalidInput):
        add(world, alice, chat, world.person())
    with pytest.raises(InvalidInput):
        remove(world, alice, chat, bob)
    with pytest.raises(InvalidInput):
        remove(world, bob, chat, bob)
    with pytest.raises(InvalidInput):
        make(world, alice, chat, bob, "admin")
    assert participants(world) == before


@pytest.mark.parametrize("fields", [
    {}, {"members": []}, {"members": "+14155550100"}, {"members": ["not a phone"]},
    {"members": [12]}, {"members": ["+14155550100"] * 1001},
])
def test_a_bad_member_list_is_bad_request_and_changes_nothing(world, trio, fields):
    chat, olive, adam, mia = trio
    before, users_before = participants(world), world.count("users")

    with pytest.raises(InvalidInput):
        membership.add_members(olive.id, chat, fields, world.ctx)
    assert participants(world) == before
    assert world.count("users") == users_before
    assert world.push.frames == []


@pytest.mark.parametrize("fields", [{}, {"role": "owner"}, {"role": "Admin"}, {"role": None},
                                    {"role": ["admin"]}])
def test_a_bad_role_is_bad_request_and_changes_nothing(world, trio, fields):
    chat, olive, adam, mia = trio
    before = participants(world)

    with pytest.raises(InvalidInput):
        membership.change_role(olive.id, chat, mia.id, fields, world.ctx)
    with pytest.raises(InvalidInput):  # the owner's own role passes on only by leaving
        make(world, olive, chat, olive, "member")
    assert participants(world) == before


def test_an_unknown_member_is_not_found(world, trio):
    chat, olive, adam, mia = trio
    stranger = world.person()

    with pytest.raises(NotFound):
        remove(world, olive, chat, stranger)
    with pytest.raises(NotFound):
        make(world, olive, chat, stranger, "admin")


# --- adding ----------------------------------------------------------------------------------


def test_a_new_member_gets_only_what_is_sent_after_joining(world, trio):
    chat, olive, adam, mia = trio
    olive_phone = world.device(olive)
    world.send(olive_phone, chat, body="before 1")
    world.send(olive_phone, chat, body="before 2")
    dave = world.person()

    add(world, adam, chat, dave)
    dave_phone = world.device(dave)
    (mine,) = conversations.list_for(dave.id, {}, world.ctx)["conversations"]
    assert (mine["last_seq"], mine["read_seq"], mine["unread_count"]) == (2, 2, 0)
    assert mine["last_message"] is None
    assert history(world, dave, chat) == []

    world.send(olive_phone, chat, body="after")
    assert [m["seq"] for m in world.received(dave_phone, "message")] == [3]
    assert history(world, dave, chat) == [3]
    assert reading.history(dave.id, chat, {"before_seq": 3}, world.ctx)["messages"] == []
    world.frame(dave_phone, "sync", cursors={})
    (entry,) = world.last(dave_phone, "sync")["conversations"]
    assert ([m["seq"] for m in entry["messages"]], entry["first_seq"]) == ([3], 3)
    (row,) = [r for r in participants(world) if (r["conversation_id"], r["user_id"]) == (
        chat, dave.id)]
    assert (row["role"], row["joined_seq"], row["read_seq"]) == ("member", 2, 2)


def test_a_phone_without_an_account_becomes_a_pending_member_with_the_same_reply(world, trio):
    chat, olive, adam, mia = trio
    known, newcomer_phone = world.person(), world.new_phone()

    with_account = add(world, olive, chat, known)
    without = add(world, olive, chat, newcomer_phone)

    pending = next(m for m in without["members"] if m["phone"] == newcomer_phone)
    registered = next(m for m in with_account["members"] if m["user_id"] == known.id)
    assert set(pending) == set(registered)
    assert pending["role"] == "member"
    (user,) = [u for u in world.rows("users") if u["phone"] == newcomer_phone]
    assert user["activated_at"] is None


def test_adding_charges_the_creation_limits(world, trio, limits):
    chat, olive, adam, mia = trio
    limits.hits.clear()

    add(world, olive, chat, world.person(), world.new_phone(), mia)

    assert ("conversations_per_new_user", 1) in limits.hits  # Olive signed up today
    assert ("new_contacts_per_user", 2) in limits.hits  # two strangers; Mia is no news


def test_someone_who_blocked_the_adder_cannot_be_added(world, trio):
    chat, olive, adam, mia = trio
    blocker = world.person()
    account.block(blocker.id, {"user_id": adam.id}, world.ctx)
    before = participants(world)

    with pytest.raises(Forbidden):
        add(world, adam, chat, world.person(), blocker)
    assert participants(world) == before
    add(world, olive, chat, blocker)  # the block is of Adam, not of the group


def test_members_already_in_are_skipped(world, trio):
    chat, olive, adam, mia = trio
    world.device(mia)
    before = participants(world)

    view = add(world, adam, chat, mia, olive, "+1 " + adam.phone[2:])

    assert participants(world) == before
    assert world.push.frames == []
    assert len(view["members"]) == 3


def test_a_group_stays_within_its_member_limit(world, trio, monkeypatch):
    chat, olive, adam, mia = trio
    monkeypatch.setattr(membership, "MEMBERS_MAX", 4)
    before = participants(world)

    with pytest.raises(InvalidInput):
        add(world, olive, chat, world.person(), world.person())
    assert participants(world) == before
    add(world, olive, chat, world.person(), mia)  # Mia is in already: four in all
    assert len(participants(world)) == 4


def test_a_new_group_counts_its_creator_within_the_member_limit(world, monkeypatch):
    creator = world.person()
    monkeypatch.setattr(conversations, "MEMBERS_MAX", 3)
    before = participants(world)

    with pytest.raises(InvalidInput):
        conversations.create(creator.id, {"members": [world.new_phone() for _ in range(3)]},
                             world.ctx)
    assert participants(world) == before
    view, _ = conversations.create(creator.id, {"members": [world.new_phone(), world.new_phone()]},
                                   world.ctx)
    assert len(view["members"]) == 3


def test_a_contact_is_added_accepted_and_a_stranger_as_a_request(world, trio):
    chat, olive, adam, mia = trio
    friend, stranger = world.person(), world.person()
    world.chat(olive, friend)

    add(world, olive, chat, friend, stranger)

    requests = {row["user_id"]: row["consent"] for row in participants(world)
                if row["conversation_id"] == chat}
    assert (requests[friend.id], requests[stranger.id]) == ("accepted", "request")
    (listed,) = conversations.list_for(stranger.id, {}, world.ctx)["conversations"]
    assert listed["request"] is True


def test_one_who_had_declined_comes_back_as_a_fresh_request(world):
    olive, friend, stranger = world.person(), world.person(), world.person()
    chat = world.chat(olive, friend, stranger, accepted=False)
    conversations.accept(friend.id, chat, world.ctx)
    make(world, olive, chat, stranger, "admin")
    conversations.decline(stranger.id, chat, {}, world.ctx)
    friend_phone = world.device(friend)
    world.send(friend_phone, chat, body="while away")

    add(world, olive, chat, stranger)

    (mine,) = conversations.list_for(stranger.id, {}, world.ctx)["conversations"]
    assert mine["request"] is True
    assert roles(world, olive, chat)[stranger.id] == "member"
    assert history(world, stranger, chat) == []


def test_adding_pushes_member_added_to_everyone_and_the_chat_to_the_newcomer(world, trio):
    chat, olive, adam, mia = trio
    olive_phone, mia_phone = world.device(olive), world.device(mia)
    outsider_phone = world.device(world.person())
    dave = world.person()
    dave_phone, dave_laptop = world.device(dave), world.device(dave)
    world.forget_frames()

    add(world, adam, chat, dave)

    added = {"type": "member", "conversation_id": chat, "user_id": dave.id,
             "change": "added", "by": adam.id}
    for phone in (olive_phone, mia_phone, dave_phone, dave_laptop):
        assert world.received(phone, "member") == [added]
    for phone in (dave_phone, dave_laptop):
        first = world.received(phone)[0]
        assert (first["type"], first["change"], first["by"]) == ("conversation", "created",
                                                                 adam.id)
        assert first["conversation"] == conversations.view_one(dave.id, chat, world.ctx)
    assert world.received(olive_phone, "conversation") == []
    assert world.received(outsider_phone) == []


def test_an_added_contact_and_the_group_see_each_others_presence(world, trio):
    chat, olive, adam, mia = trio
    mia_phone = world.device(mia)
    friend = world.person()
    world.chat(adam, friend)
    world.device(friend)
    world.forget_frames()

    add(world, adam, chat, friend)

    assert {(f["user_id"], f["online"]) for f in world.received(mia_phone, "presence")} == {
        (friend.id, True)}
    view = conversations.view_one(friend.id, chat, world.ctx)
    assert next(m for m in view["members"] if m["user_id"] == mia.id)["online"] is True
    world.disconnect(mia_phone)  # and from now on, as in any shared chat
    friend_phone = world.device(friend)
    world.forget_frames()
    world.device(mia)
    assert world.received(friend_phone, "presence")[-1]["user_id"] == mia.id


def test_a_stranger_added_reveals_no_presence_until_they_accept(world, trio):
    chat, olive, adam, mia = trio
    mia_phone = world.device(mia)
    stranger = world.person()
    world.device(stranger)
    world.forget_frames()

    add(world, adam, chat, stranger)

    assert world.received(mia_phone, "presence") == []
    conversations.accept(stranger.id, chat, world.ctx)
    assert world.received(mia_phone, "presence")[-1]["user_id"] == stranger.id


# --- removing and leaving -------------------------------------------------------------------


def test_a_removed_member_gets_no_pushes_and_not_found_for_history(world, trio):
    chat, olive, adam, mia = trio
    olive_phone, mia_phone = world.device(olive), world.device(mia)
    world.send(olive_phone, chat, body="before")

    remove(world, adam, chat, mia)
    world.forget_frames()
    world.send(olive_phone, chat, body="after")
    world.frame(olive_phone, "typing", conversation_id=chat, active=True)

    assert world.received(mia_phone) == []
    with pytest.raises(NotFound):
        reading.history(mia.id, chat, {}, world.ctx)
    world.frame(mia_phone, "sync", cursors={})
    assert world.last(mia_phone, "sync")["conversations"] == []
    world.frame(mia_phone, "sync", cursors={chat: 1})
    assert world.last(mia_phone, "error")["code"] == "not_found"
    assert conversations.list_for(mia.id, {}, world.ctx)["conversations"] == []


def test_removal_frames_reach_the_group_and_the_removed_one(world, trio):
    chat, olive, adam, mia = trio
    olive_phone, adam_phone = world.device(olive), world.device(adam)
    mia_phone, mia_laptop = world.device(mia), world.device(mia)
    world.forget_frames()

    remove(world, adam, chat, mia)

    removed = {"type": "member", "conversation_id": chat, "user_id": mia.id,
               "change": "removed", "by": adam.id}
    for phone in (olive_phone, adam_phone, mia_phone, mia_laptop):
        assert world.received(phone) == [removed]


def test_leaving_hands_the_group_to_the_longest_standing_admin(world, clock):
    olive, mia, adam, later_admin = (world.person() for _ in range(4))
    chat = world.chat(olive, mia, adam)
    clock.advance(seconds=1)
    add(world, olive, chat, later_admin)
    make(world, olive, chat, later_admin, "admin")
    make(world, olive, chat, adam, "admin")
    olive_phone, adam_phone, mia_phone = world.device(olive), world.device(adam), world.device(mia)
    world.forget_frames()

    remove(world, olive, chat, olive)

    left = {"type": "member", "conversation_id": chat, "user_id": olive.id, "change": "left",
            "by": olive.id}
    handed = {"type": "member", "conversation_id": chat, "user_id": adam.id, "change": "role",
              "role": "owner", "by": olive.id}
    assert world.received(adam_phone) == [left, handed]
    assert world.received(mia_phone) == [left, handed]
    assert world.received(olive_phone) == [left]
    assert roles(world, adam, chat) == {adam.id: "owner", mia.id: "member",
                                        later_admin.id: "admin"}
    make(world, adam, chat, mia, "admin")  # the heir owns it now


def test_a_plain_member_and_an_admin_may_leave(world, trio):
    chat, olive, adam, mia = trio
    olive_phone = world.device(olive)

    remove(world, mia, chat, mia)
    remove(world, adam, chat, adam)

    assert roles(world, olive, chat) == {olive.id: "owner"}
    assert [f["change"] for f in world.received(olive_phone, "member")] == ["left", "left"]


def test_the_last_one_out_deletes_the_conversation_and_its_messages(world, trio, db):
    chat, olive, adam, mia = trio
    declined = world.person()
    add(world, olive, chat, declined)
    conversations.decline(declined.id, chat, {}, world.ctx)
    olive_phone = world.device(olive)
    world.send(olive_phone, chat, body="soon gone")
    other = world.chat(olive, adam)
    world.send(olive_phone, other, body="stays")

    for person in (mia, olive, adam):
        remove(world, person, chat, person)

    def rows(txn, table, column):
        txn.execute(f"SELECT COUNT(*) AS n FROM {table} WHERE {column} = %s", (chat,))
        return txn.fetchone()["n"]

    for table, column in (("conversations", "id"), ("participants", "conversation_id"),
                          ("messages", "conversation_id"),
                          ("idempotency_keys", "conversation_id")):
        assert db.run_read("t", rows, table, column) == 0, table
    assert history(world, adam, other) == [1]


def test_leaving_a_request_is_a_decline_that_tells_nobody(world):
    olive, friend, stranger = world.person(), world.person(), world.person()
    chat = world.chat(olive, friend, stranger, accepted=False)
    conversations.accept(friend.id, chat, world.ctx)
    olive_phone, stranger_phone = world.device(olive), world.device(stranger)
    seen_before = conversations.view_one(olive.id, chat, world.ctx)["members"]
    world.forget_frames()

    remove(world, stranger, chat, stranger)

    assert world.received(olive_phone) == []
    assert world.received(stranger_phone, "member") == [
        {"type": "member", "conversation_id": chat, "user_id": stranger.id, "change": "left",
         "by": stranger.id}]
    assert conversations.view_one(olive.id, chat, world.ctx)["members"] == seen_before
    with pytest.raises(NotFound):
        reading.history(stranger.id, chat, {}, world.ctx)


def test_a_member_who_declined_can_still_be_removed_as_if_there(world):
    olive, friend, stranger = world.person(), world.person(), world.person()
    chat = world.chat(olive, friend, stranger, accepted=False)
    conversations.decline(stranger.id, chat, {}, world.ctx)
    stranger_phone = world.device(stranger)

    remove(world, olive, chat, stranger)

    assert stranger.id not in roles(world, olive, chat)
    assert world.received(stranger_phone) == []  # the chat was no longer theirs


# --- roles ----------------------------------------------------------------------------------


def test_the_owner_makes_an_admin_who_can_then_manage_members(world, trio):
    chat, olive, adam, mia = trio
    olive_phone, mia_phone = world.device(olive), world.device(mia)
    world.forget_frames()

    view = make(world, olive, chat, mia, "admin")

    assert next(m for m in view["members"] if m["user_id"] == mia.id)["role"] == "admin"
    promoted = {"type": "member", "conversation_id": chat, "user_id": mia.id, "change": "role",
                "role": "admin", "by": olive.id}
    assert world.received(olive_phone) == [promoted]
    assert world.received(mia_phone) == [promoted]
    dave = world.person()
    add(world, mia, chat, dave)
    remove(world, mia, chat, dave)
    world.forget_frames()

    make(world, olive, chat, mia, "member")
    make(world, olive, chat, mia, "member")  # no change, no frame

    assert [f["role"] for f in world.received(mia_phone, "member")] == ["member"]
    with pytest.raises(Forbidden):
        add(world, mia, chat, world.person())


# --- conversation frames ----------------------------------------------------------------------


def test_creating_a_conversation_pushes_each_other_member_their_own_view(world):
    olive, friend, stranger = world.person(), world.person(), world.person()
    world.chat(olive, friend)
    olive_phone, friend_phone = world.device(olive), world.device(friend)
    stranger_phone = world.device(stranger)
    world.forget_frames()

    view, _ = conversations.create(olive.id, {"members": [friend.phone, stranger.phone],
                                              "title": "Trip"}, world.ctx)

    assert world.received(olive_phone) == []
    for person, phone, request in ((friend, friend_phone, False),
                                   (stranger, stranger_phone, True)):
        (frame,) = world.received(phone)
        assert (frame["type"], frame["change"], frame["by"]) == ("conversation", "created",
                                                                 olive.id)
        assert frame["conversation"] == conversations.view_one(person.id, view["id"], world.ctx)
        assert frame["conversation"]["request"] is request


def test_asking_again_for_an_existing_direct_chat_pushes_nothing(world):
    olive, friend = world.person(), world.person()
    world.chat(olive, friend)
    friend_phone = world.device(friend)
    world.forget_frames()

    conversations.create(olive.id, {"members": [friend.phone]}, world.ctx)

    assert world.received(friend_phone) == []


def test_a_title_or_ttl_change_pushes_updated_to_the_others(world, trio):
    chat, olive, adam, mia = trio
    olive_phone, olive_laptop = world.device(olive), world.device(olive)
    mia_phone = world.device(mia)
    declined = world.person()
    add(world, olive, chat, declined)
    conversations.decline(declined.id, chat, {}, world.ctx)
    declined_phone = world.device(declined)
    world.forget_frames()

    conversations.update(adam.id, chat, {"ttl_seconds": 10}, world.ctx)
    conversations.update(adam.id, chat, {"title": "Renamed"}, world.ctx)
    conversations.update(adam.id, chat, {"title": "Renamed", "ttl_seconds": 10}, world.ctx)

    frames = world.received(mia_phone, "conversation")
    assert [(f["change"], f["by"]) for f in frames] == [("updated", adam.id)] * 2
    assert [(f["conversation"]["ttl_seconds"], f["conversation"]["title"])
            for f in frames] == [(10, "group"), (10, "Renamed")]
    assert len(world.received(olive_phone, "conversation")) == 2
    assert len(world.received(olive_laptop, "conversation")) == 2
    assert world.received(declined_phone) == []


def test_the_actors_own_devices_get_no_conversation_frame(world, trio):
    chat, olive, adam, mia = trio
    adam_phone, adam_laptop = world.device(adam), world.device(adam)
    world.forget_frames()

    conversations.update(adam.id, chat, {"ttl_seconds": 60}, world.ctx)

    assert world.received(adam_phone) == world.received(adam_laptop) == []


# --- the expiry engine follows membership ----------------------------------------------------


def test_expired_and_unread_after_a_removal_go_only_to_current_members(world, clock):
    olive, mia, adam = world.person(), world.person(), world.person()
    chat = world.chat(olive, mia, adam, ttl_seconds=10)
    olive_phone, mia_phone, adam_phone = (world.device(p) for p in (olive, mia, adam))
    world.send(olive_phone, chat, body="short-lived")
    remove(world, olive, chat, mia)
    world.forget_frames()

    clock.advance(seconds=11)
    announce(purge_expired(world.ctx), world.ctx)

    assert world.received(mia_phone) == []
    assert world.last(adam_phone, "expired")["ranges"] == [[1, 1]]
    assert world.last(adam_phone, "unread")["count"] == 0


def test_a_member_added_later_is_not_told_of_messages_from_before_the_join(world, clock):
    olive, adam, mia, newcomer = (world.person() for _ in range(4))
    chat = world.chat(olive, adam, mia, ttl_seconds=10)
    olive_phone, adam_phone = world.device(olive), world.device(adam)
    world.send(olive_phone, chat, body="before the join")
    world.chat(olive, newcomer)  # a contact: added as accepted
    add(world, olive, chat, newcomer)
    newcomer_phone = world.device(newcomer)
    world.forget_frames()

    clock.advance(seconds=11)
    announce(purge_expired(world.ctx), world.ctx)

    assert world.received(newcomer_phone) == []
    assert world.last(adam_phone, "expired")["ranges"] == [[1, 1]]


# --- over REST (Chalice's test client, MariaDB) -----------------------------------------------


@pytest.fixture
def api(client, mysql_db) -> Api:
    return Api(client, mysql_db)


def test_the_membership_routes_answer_with_the_protocols_statuses_and_errors(api):
    olive, adam, mia = (api.login(f"+1415555030{i}") for i in range(3))
    token = olive["access_token"]
    _, group = api.call("POST", "/conversations",
                        {"members": ["+14155550301", "+14155550302"], "title": "g"}, token)
    members = f"/conversations/{group['id']}/members"
    adam_id, mia_id = adam["user"]["id"], mia["user"]["id"]
    for person in (adam, mia):
        api.call("POST", f"/conversations/{group['id']}/accept", None, person["access_token"])

    status, view = api.call("PATCH", f"{members}/{adam_id}", {"role": "admin"}, token)
    assert status == 200
    assert {m["user_id"]: m["role"] for m in view["members"]}[adam_id] == "admin"
    status, view = api.call("POST", members, {"members": ["+1 415 555 0309"]},
                            adam["access_token"])
    assert (status, len(view["members"])) == (200, 4)
    assert api.call("DELETE", f"{members}/{mia_id}", None, adam["access_token"]) == (204, None)

    status, error = api.call("PATCH", f"{members}/{adam_id}", {"role": "owner"}, token)
    assert (status, error["error"]["code"]) == (400, "bad_request")
    status, error = api.call("POST", members, {"members": ["+14155550310"]},
                             mia["access_token"])
    assert (status, error["error"]["code"]) == (404, "not_found")
    status, error = api.call("DELETE", f"{members}/{olive['user']['id']}", None,
                             adam["access_token"])
    assert (status, error["error"]["code"]) == (403, "forbidden")
    status, error = api.call("POST", members, {"members": ["+14155550310"]})
    assert (status, error["error"]["code"]) == (401, "unauthorized")
    _, direct = api.call("POST", "/conversations", {"members": ["+14155550301"]}, token)
    status, error = api.call("DELETE", f"/conversations/{direct['id']}/members/{adam_id}",
                             None, token)
    assert (status, error["error"]["code"]) == (400, "bad_request")


@pytest.fixture
def owner_of_group(api) -> tuple[str, str]:
    owner = api.login("+14155550320")
    _, group = api.call("POST", "/conversations",
                        {"members": ["+14155550321", "+14155550322"]}, owner["access_token"])
    return owner["access_token"], group["id"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(["members", "role"]), odd_json, max_size=2),
       user_id=odd_text.filter(lambda text: text.strip(".")),  # "" or ".." name no member
       method=st.sampled_from(["POST", "PATCH", "DELETE"]))
def test_odd_membership_bodies_and_ids_never_answer_5xx(api, owner_of_group, body, user_id,
                                                        method):
    token, chat = owner_of_group
    path = f"/conversations/{chat}/members"
    if method != "POST":
        path += "/" + quote(user_id, safe="", errors="surrogatepass")

    response = api.client.http.request(method, path, body=json.dumps(body), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    assert_client_error_or_ok(response)
