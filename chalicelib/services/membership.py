"""Who is in a group and what they may do there: adding people, removing them or leaving,
and making admins (PROTOCOL "Safety, management and the account").

Roles are `owner` (the creator; one per group), `admin` and `member`. Every change is told
as `member` frames to every live connection of the group as it is after the change, and to
the connections of the one who went. Pushes come from the participants table at the moment
of sending (here and in every other fan-out), so a removed member's devices stop getting the
conversation at once, and a new one gets only what is sent after the join.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.errors import Forbidden, InvalidInput, NotFound
from chalicelib.services.context import Context
from chalicelib.services.conversations import (
    MEMBERS_MAX,
    conversation_frames_txn,
    member_phones,
    members_by_phone,
    view_one,
)
from chalicelib.services.delivery import push_frames
from chalicelib.storage import blocks, connections, conversations, users
from chalicelib.storage.conversations import (
    ACCEPTED,
    DECLINED,
    REQUEST,
    Conversation,
    Departure,
    Participant,
)
from chalicelib.storage.database import Transaction
from chalicelib.wire import Frame, member_frame, presence_frame

ROLES = ("admin", "member")  # what the owner may make someone; ownership passes by leaving

Frames = list[tuple[str, Frame]]


@dataclass(frozen=True)
class Added:
    user_id: str
    consent: str


@dataclass(frozen=True)
class Removal:
    """What a removal did, for the frames after it commits."""

    user_id: str
    change: str  # "removed" | "left"
    departure: Departure
    tell_others: bool  # False when a request is left: nothing about its member may show
    tell_them: bool  # False for one who had declined: the chat is no longer theirs


# --- POST /conversations/{id}/members -----------------------------------------------------


def add_members(user_id: str, conversation_id: str, fields: dict[str, Any],
                ctx: Context) -> dict[str, Any]:
    """Owner and admins add people by phone, exactly as creation names them: a phone without
    an account becomes a pending member (the reply is the same), the same abuse limits
    apply, and someone who blocked the caller cannot be added. Members already in are
    skipped; one who had declined comes back as a fresh request. A new member's history,
    sync and cursors start at the join (the conversation's `last_seq` now)."""
    phones = member_phones(fields.get("members"))
    now = ctx.clock.now_ms()

    def add_txn(txn: Transaction) -> list[Added]:
        conversation, _ = _managed_group(txn, conversation_id, user_id)
        adder = users.get_user(txn, user_id)
        assert adder is not None
        participants = {p.user_id: p
                        for p in conversations.list_participants(txn, conversation_id)}
        found = users.users_by_phone(txn, phones)
        newcomers = [phone for phone in phones if phone != adder.phone and (
            found.get(phone) not in participants
            or participants[found[phone]].consent == DECLINED)]
        if not newcomers:
            return []
        rows = sum(1 for phone in newcomers if found.get(phone) not in participants)
        if len(participants) + rows > MEMBERS_MAX:
            raise InvalidInput(f"a group has at most {MEMBERS_MAX} members")
        ids, contacts = members_by_phone(txn, user_id, adder.activated_at or adder.created_at,
                                         newcomers, now, ctx)
        if blocks.blockers_of(txn, user_id, ids):
            raise Forbidden("you cannot add one of these people")
        return _admit(txn, conversation, participants, ids,
                      contacts | users.accepting_everyone(txn, ids), now)

    added = ctx.db.run_transaction("membership.add", add_txn)
    if added:
        push_frames(ctx.db.run_read("membership.added", _added_frames_txn, conversation_id,
                                    added, user_id, now, ctx.presence_push_max_members), ctx)
    return view_one(user_id, conversation_id, ctx)


def _admit(txn: Transaction, conversation: Conversation, participants: dict[str, Participant],
           ids: list[str], known: set[str], now: int) -> list[Added]:
    """Put the new members in at the conversation's last seq: accepted if the adder is their
    accepted contact or they accept everyone, else a request; one who had declined comes
    back as a request (they said no to this very chat)."""
    at = conversation.last_seq
    added, rows = [], []
    for member in ids:
        if member in participants:
            conversations.rejoin_participant(txn, conversation.id, member, consent=REQUEST,
                                             at_seq=at, now_ms=now)
            added.append(Added(member, REQUEST))
            continue
        consent = ACCEPTED if member in known else REQUEST
        rows.append(Participant(conversation.id, member, "member", at, at, at, now, consent))
        added.append(Added(member, consent))
    if rows:
        conversations.insert_participants(txn, rows)
    return added


def _added_frames_txn(txn: Transaction, conversation_id: str, added: list[Added], by: str,
                      now: int, presence_max_members: int) -> Frames:
    """The new members' own `conversation` (`created`) first, so their clients know the chat;
    then `member` `added` for each to everyone; then the presence of each new member who
    accepted to those who may see it, as a new conversation would show it (the new members
    see the others' presence in their `conversation` view)."""
    listeners = conversations.connections_of_conversation(txn, conversation_id)
    new_ids = {a.user_id for a in added}
    frames = conversation_frames_txn(
        txn, conversation_id, [listener for listener in listeners if listener.user_id in new_ids],
        "created", by=by, now=now, max_group_members=presence_max_members)
    for newcomer in added:
        frame = member_frame(conversation_id, newcomer.user_id, "added", by=by)
        frames += [(listener.connection_id, frame) for listener in listeners]
    accepted = {a.user_id for a in added if a.consent == ACCEPTED}
    if accepted:
        for member in conversations.members_of(txn, [conversation_id]):
            if member.user_id in accepted:
                presence = presence_frame(member.user_id, online=member.online,
                                          last_seen_at=member.last_seen_at)
                frames += [(cid, presence) for cid in connections.connection_ids_of_contacts(
                    txn, member.user_id, conversation_id, max_group_members=presence_max_members)]
    return frames


# --- DELETE /conversations/{id}/members/{user_id} ---------------------------------------


def remove_member(user_id: str, conversation_id: str, target_id: str, ctx: Context) -> None:
    """Removing oneself is leaving (anyone may); the owner removes anyone, an admin only
    plain members. An owner leaving hands the group over; the last one out deletes it with
    its messages. Leaving a request is declining it: nobody else is told."""

    def remove_txn(txn: Transaction) -> Removal:
        _, me = _group_of(txn, conversation_id, user_id)
        if target_id == user_id:
            return _leave(txn, me)
        _may_manage(me)
        target = conversations.get_participant(txn, conversation_id, target_id)
        if target is None:
            raise NotFound("no such member")
        if me.role == "admin" and target.role != "member":
            raise Forbidden("an admin can remove only members")
        departure = conversations.remove_participant(txn, conversation_id, target_id,
                                                     target.role)
        return Removal(target_id, "removed", departure, tell_others=True,
                       tell_them=target.consent != DECLINED)

    removal = ctx.db.run_transaction("membership.remove", remove_txn)
    push_frames(ctx.db.run_read("membership.removed", removal_frames_txn, conversation_id,
                                removal, user_id), ctx)


def _leave(txn: Transaction, me: Participant) -> Removal:
    """One who has not accepted leaves as a decline does (the row stays, so the others see
    them as before and learn nothing); anyone else goes, handing the group over if they
    owned it. (An owner has accepted, but an heir may not have yet: they go as owners do.)"""
    if me.consent == REQUEST and me.role != "owner":
        conversations.set_consent(txn, me.conversation_id, me.user_id, DECLINED)
        return Removal(me.user_id, "left", Departure(new_owner=None, deleted=False),
                       tell_others=False, tell_them=True)
    departure = conversations.remove_participant(txn, me.conversation_id, me.user_id, me.role)
    return Removal(me.user_id, "left", departure, tell_others=True, tell_them=True)


def removal_frames_txn(txn: Transaction, conversation_id: str, removal: Removal,
                        by: str) -> Frames:
    """`member` to the one who went (all their devices drop the chat) and to the group as it
    now is; on a hand-over, `role` `owner` for the heir, by the one who left."""
    frame = member_frame(conversation_id, removal.user_id, removal.change, by=by)
    frames = ([(cid, frame) for cid in connections.connection_ids_of_user(txn, removal.user_id)]
              if removal.tell_them else [])
    if not removal.tell_others or removal.departure.deleted:
        return frames
    listeners = conversations.connections_of_conversation(txn, conversation_id)
    frames += [(listener.connection_id, frame) for listener in listeners]
    heir = removal.departure.new_owner
    if heir is not None:
        handed = member_frame(conversation_id, heir, "role", by=removal.user_id, role="owner")
        frames += [(listener.connection_id, handed) for listener in listeners]
    return frames


# --- PATCH /conversations/{id}/members/{user_id} ------------------------------------------


def change_role(user_id: str, conversation_id: str, target_id: str, fields: dict[str, Any],
                ctx: Context) -> dict[str, Any]:
    """The owner makes another member an admin or a plain member again."""
    role = fields.get("role")
    if role not in ROLES:
        raise InvalidInput("role must be \"admin\" or \"member\"")

    def role_txn(txn: Transaction) -> bool:
        _, me = _managed_group(txn, conversation_id, user_id)
        if me.role != "owner":
            raise Forbidden("only the group's owner can change roles")
        if target_id == user_id:
            raise InvalidInput("the owner's role passes on only by leaving")
        if conversations.get_participant(txn, conversation_id, target_id) is None:
            raise NotFound("no such member")
        return conversations.set_role(txn, conversation_id, target_id, role)

    if ctx.db.run_transaction("membership.role", role_txn):
        frame = member_frame(conversation_id, target_id, "role", by=user_id, role=role)
        listeners = ctx.db.run_read("membership.role_audience",
                                    conversations.connections_of_conversation, conversation_id)
        push_frames([(listener.connection_id, frame) for listener in listeners], ctx)
    return view_one(user_id, conversation_id, ctx)


def _managed_group(txn: Transaction, conversation_id: str,
                   user_id: str) -> tuple[Conversation, Participant]:
    """The group (its row locked) and the caller's place in it, if the caller may manage its
    members: `not_found` to one not in it (or who declined it), `bad_request` for a direct
    chat, `forbidden` to one who has not accepted it yet or is neither owner nor admin."""
    conversation, me = _group_of(txn, conversation_id, user_id)
    _may_manage(me)
    return conversation, me


def _group_of(txn: Transaction, conversation_id: str,
              user_id: str) -> tuple[Conversation, Participant]:
    """The group (its row locked) and the caller's place in it: `not_found` to one not in it
    (or who declined it), `bad_request` for a direct chat."""
    conversation = conversations.lock_conversation(txn, conversation_id)
    me = conversations.get_participant(txn, conversation_id, user_id)
    if conversation is None or me is None or me.consent == DECLINED:
        raise NotFound("no such conversation")
    if conversation.kind != "group":
        raise InvalidInput("a direct conversation has no members to change")
    return conversation, me


def _may_manage(me: Participant) -> None:
    """Only an owner or admin who has accepted the group changes its members."""
    if me.consent == REQUEST:  # a change would show the others that the phone is here
        raise Forbidden("accept this conversation before changing it")
    if me.role not in ("owner", "admin"):
        raise Forbidden("only the group's owner and admins can change its members")
