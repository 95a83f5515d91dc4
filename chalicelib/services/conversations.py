"""Conversations: 1:1 (de-duplicated per pair) and groups, consent to them, and what a member
sees of them and of the other members."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

from chalicelib.crypto import keyed_hash
from chalicelib.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from chalicelib.ids import new_id, new_user_id
from chalicelib.inputs import int_field
from chalicelib.phones import normalize_phone
from chalicelib.services.context import Context
from chalicelib.services.delivery import push_frames
from chalicelib.services.limits import NEW_ACCOUNT_MS
from chalicelib.services.presence import presence_pushed, reveal
from chalicelib.storage import blocks, conversations, messages, users
from chalicelib.storage.connections import PRESENCE_PUSH_MAX_MEMBERS
from chalicelib.storage.conversations import (
    ACCEPTED,
    DECLINED,
    REQUEST,
    Conversation,
    Listener,
    Member,
    Participant,
)
from chalicelib.storage.database import Transaction
from chalicelib.wire import Frame, conversation_frame, message_view

TTL_MIN_S, TTL_MAX_S, TTL_DEFAULT_S = 10, 30 * 24 * 3600, 24 * 3600
TITLE_MAX = 200
# Big groups are served by the fan-out queue (services/fanout.py) and get no presence pushes.
MEMBERS_MAX = 1000
LIST_LIMIT, LIST_MAX = 50, 200
# A page of `GET /conversations` stops growing past this many bytes (Lambda's reply limit is
# 6 MB; big groups make big pages), and says where to go on with `next_cursor`.
LIST_REPLY_BUDGET_BYTES = 1_000_000
LIST_CURSOR = re.compile(r"([0-9]{1,16})\.([0-9A-Z]{26})")  # fullmatch, as CLIENT_MSG_ID


def create(user_id: str, fields: dict[str, Any], ctx: Context) -> tuple[dict[str, Any], bool]:
    """`POST /conversations`: one other phone makes a direct chat (the pair's existing one if
    there is one), any other request a group. A phone with no account becomes a pending user:
    the reply is the same either way. For each member who shares no accepted conversation
    with the creator (and has not turned requests off), the conversation is a request.
    Returns (conversation, created)."""
    phones = member_phones(fields.get("members"))
    title = _title(fields.get("title"))
    ttl = _ttl(fields.get("ttl_seconds", TTL_DEFAULT_S))
    now = ctx.clock.now_ms()

    def create_txn(txn: Transaction) -> tuple[str, bool]:
        me = users.get_user(txn, user_id)
        assert me is not None
        others = [phone for phone in phones if phone != me.phone]
        if not others:
            raise InvalidInput("members must name at least one other phone")
        if len(others) + 1 > MEMBERS_MAX:  # the creator is a member too
            raise InvalidInput(f"a group has at most {MEMBERS_MAX} members, you included")
        member_ids, contacts = members_by_phone(txn, user_id, me.activated_at or me.created_at,
                                                others, now, ctx)
        if blocks.blockers_of(txn, user_id, member_ids):
            raise Forbidden("you cannot start a conversation with one of these people")
        key = conversations.direct_key(user_id, member_ids[0]) if len(others) == 1 else None
        existing = conversations.get_direct_conversation(txn, key) if key else None
        if existing is not None:
            _come_back(txn, existing, user_id)
            return existing.id, False
        conversation = Conversation(
            id=new_id(now), kind="direct" if key else "group", direct_key=key, title=title,
            ttl_seconds=ttl, last_seq=0, created_by=user_id, created_at=now, updated_at=now,
            activity_at=now)
        conversations.insert_conversation(txn, conversation)
        known = contacts | users.accepting_everyone(txn, member_ids)
        conversations.insert_participants(txn, [
            Participant(conversation.id, user_id, "owner", 0, 0, 0, now, ACCEPTED)] + [
            Participant(conversation.id, member, "member", 0, 0, 0, now,
                        ACCEPTED if member in known else REQUEST)
            for member in member_ids
        ])
        return conversation.id, True

    try:
        conversation_id, created = ctx.db.run_transaction("conversations.create", create_txn)
    except Conflict:  # the pair's direct chat was created by a concurrent request
        conversation_id, created = ctx.db.run_transaction("conversations.create", create_txn)
    if created:
        announce_to_others(conversation_id, "created", by=user_id, ctx=ctx)
    return view_one(user_id, conversation_id, ctx), created


def members_by_phone(txn: Transaction, user_id: str, account_since: int, phones: list[str],
                     now: int, ctx: Context) -> tuple[list[str], set[str]]:
    """The users of these phones (and which of them are the caller's accepted contacts),
    creating pending users for phones without one, after the abuse limits that creating a
    conversation and adding members to a group share: conversations (and member additions)
    per user, stricter for an account younger than a day, and strangers added per user per
    day, one hit each. Strangers, not
    only pending users, are counted: a cap that only phones without an account could hit
    would tell them from phones with one."""
    # The caller's and the members' rows are held until the commit, so that an account
    # deletion never interleaves with rows that name these users.
    if not users.lock_existing_user(txn, user_id):
        raise Unauthorized("this account has been deleted")
    found = users.users_by_phone(txn, phones, lock=True)
    known = conversations.accepted_contacts(txn, user_id, list(found.values()))
    strangers = [phone for phone in phones if found.get(phone) not in known]
    new_account = now - account_since < NEW_ACCOUNT_MS
    ctx.limiter.check_txn(txn, [("conversations_per_new_user" if new_account
                                else "conversations_per_user", user_id)], now)
    ctx.limiter.check_txn(txn, [("new_contacts_per_user", user_id)], now, cost=len(strangers))
    for phone in phones:
        if phone not in found:
            found[phone] = users.get_or_create_user(
                txn, new_id=new_user_id(), phone=phone,
                phone_key=keyed_hash(ctx.keys.phone, phone), now_ms=now, activate=False).id
    return [found[phone] for phone in phones], known


def _come_back(txn: Transaction, conversation: Conversation, user_id: str) -> None:
    """Asking again for a direct chat one is in accepts it; one who had declined it comes
    back to it from now on (nothing from before)."""
    me = conversations.get_participant(txn, conversation.id, user_id)
    if me is None:
        return
    if me.consent == DECLINED:
        conversations.set_consent(txn, conversation.id, user_id, ACCEPTED,
                                  rejoin_at_seq=conversation.last_seq)
    elif me.consent == REQUEST:
        conversations.set_consent(txn, conversation.id, user_id, ACCEPTED)


def accept(user_id: str, conversation_id: str, ctx: Context) -> dict[str, Any]:
    """`POST /conversations/{id}/accept`: the others may now see the member (and get their
    presence at once)."""

    def accept_txn(txn: Transaction) -> bool:
        me = conversations.get_participant(txn, conversation_id, user_id)
        if me is None or me.consent == DECLINED:
            raise NotFound("no such conversation")
        return conversations.set_consent(txn, conversation_id, user_id, ACCEPTED)

    if ctx.db.run_transaction("conversations.accept", accept_txn):
        reveal(user_id, conversation_id, ctx)
    return view_one(user_id, conversation_id, ctx)


def decline(user_id: str, conversation_id: str, fields: dict[str, Any], ctx: Context) -> None:
    """`POST /conversations/{id}/decline {block?}`: leave a request (it is no longer mine; the
    others see me as before, so a decline tells them nothing), blocking its starter if asked."""
    block = fields.get("block", False)
    if not isinstance(block, bool):
        raise InvalidInput("block must be true or false")
    now = ctx.clock.now_ms()

    def decline_txn(txn: Transaction) -> None:
        me = conversations.get_participant(txn, conversation_id, user_id)
        if me is None or me.consent == DECLINED:
            raise NotFound("no such conversation")
        if me.consent != REQUEST:
            raise InvalidInput("only a message request can be declined")
        conversations.set_consent(txn, conversation_id, user_id, DECLINED)
        conversation = conversations.get_conversation(txn, conversation_id)
        assert conversation is not None
        starter = users.get_user(txn, conversation.created_by)
        if block and starter is not None and starter.id != user_id:
            blocks.insert_block(txn, user_id, keyed_hash(ctx.keys.phone, starter.phone),
                                starter.id, now)

    ctx.db.run_transaction("conversations.decline", decline_txn)


def list_for(user_id: str, query: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """`GET /conversations?limit=&cursor=`: a page of mine by latest activity, newest first,
    with unread counts, last message and members; `next_cursor` goes on (null at the end)."""
    limit = int_field(query, "limit", minimum=1, maximum=LIST_MAX, default=LIST_LIMIT)
    before = _parse_cursor(query.get("cursor"))
    now = ctx.clock.now_ms()

    def list_txn(txn: Transaction) -> dict[str, Any]:
        page = conversations.page_of_user(txn, user_id, before=before, limit=limit + 1)
        views, size = [], 0
        for view in _views_txn(txn, user_id, page[:limit], now,
                               max_group_members=ctx.presence_push_max_members):
            size += len(json.dumps(view, ensure_ascii=False).encode())
            if views and size > LIST_REPLY_BUDGET_BYTES:
                break
            views.append(view)
        more = len(views) < len(page)
        last = page[len(views) - 1][0] if views else None
        return {"server_time": now, "conversations": views,
                "next_cursor": f"{last.activity_at}.{last.id}" if more and last else None}

    return ctx.db.run_read("conversations.list", list_txn)


def view_one(user_id: str, conversation_id: str, ctx: Context) -> dict[str, Any]:
    now = ctx.clock.now_ms()

    def view_txn(txn: Transaction) -> list[dict[str, Any]]:
        mine = conversations.conversation_of_user(txn, user_id, conversation_id)
        return _views_txn(txn, user_id, [mine], now,
                          max_group_members=ctx.presence_push_max_members) if mine else []

    views = ctx.db.run_read("conversations.view", view_txn)
    if not views:
        raise NotFound("no such conversation")
    return views[0]


def update(user_id: str, conversation_id: str, fields: dict[str, Any],
           ctx: Context) -> dict[str, Any]:
    """`PATCH /conversations/{id}`: title and TTL. In a group only the owner and admins may;
    in a direct chat either side. A TTL change applies to messages sent afterwards."""
    set_title = "title" in fields
    title = _title(fields.get("title")) if set_title else None
    ttl = _ttl(fields["ttl_seconds"]) if "ttl_seconds" in fields else None
    if not set_title and ttl is None:
        raise InvalidInput("send title and/or ttl_seconds")
    now = ctx.clock.now_ms()

    def update_txn(txn: Transaction) -> bool:
        me = conversations.get_participant(txn, conversation_id, user_id)
        conversation = conversations.get_conversation(txn, conversation_id)
        if me is None or conversation is None or me.consent == DECLINED:
            raise NotFound("no such conversation")
        if me.consent == REQUEST:  # a change would show the others that the phone is here
            raise Forbidden("accept this conversation before changing it")
        if conversation.kind == "group" and me.role not in ("owner", "admin"):
            raise Forbidden("only the group's owner and admins can change it")
        if conversation.kind == "direct" and _blocked_by_the_other(txn, conversation_id, user_id):
            raise Forbidden("you cannot change this conversation")  # a title would reach them
        conversations.update_settings(txn, conversation_id, title=title, set_title=set_title,
                                      ttl_seconds=ttl, now_ms=now)
        return ((set_title and title != conversation.title)
                or (ttl is not None and ttl != conversation.ttl_seconds))

    if ctx.db.run_transaction("conversations.update", update_txn):
        announce_to_others(conversation_id, "updated", by=user_id, ctx=ctx)
    return view_one(user_id, conversation_id, ctx)


def _blocked_by_the_other(txn: Transaction, conversation_id: str, user_id: str) -> bool:
    """Whether the other member of a direct chat has blocked `user_id`."""
    others = [p.user_id for p in conversations.list_participants(txn, conversation_id)
              if p.user_id != user_id]
    return bool(blocks.blockers_of(txn, user_id, others))


def announce_to_others(conversation_id: str, change: str, *, by: str, ctx: Context) -> None:
    """Push `conversation` (`created` or `updated`) to the other members' live connections,
    each with that member's own view, so no client learns of a chat only from its first
    message or shows a stale title or timer. Not to the actor's devices: the REST reply is
    theirs (PROTOCOL: "to the other participants"). Members who declined get nothing."""
    now = ctx.clock.now_ms()

    def frames_txn(txn: Transaction) -> list[tuple[str, Frame]]:
        listeners = [listener for listener
                     in conversations.connections_of_conversation(txn, conversation_id)
                     if listener.user_id != by]
        return conversation_frames_txn(txn, conversation_id, listeners, change, by=by, now=now,
                                       max_group_members=ctx.presence_push_max_members)

    push_frames(ctx.db.run_read("conversations.announce", frames_txn), ctx)


def conversation_frames_txn(txn: Transaction, conversation_id: str, listeners: list[Listener],
                            change: str, *, by: str, now: int,
                            max_group_members: int = PRESENCE_PUSH_MAX_MEMBERS,
                            ) -> list[tuple[str, Frame]]:
    """A `conversation` frame for each of these connections, with its user's own view (as
    `GET /conversations` lists it for them). The conversation and its members are read once
    for everyone; only what differs per user (unread, blocks, history start) is read each."""
    if not listeners:
        return []
    conversation = conversations.get_conversation(txn, conversation_id)
    if conversation is None:
        return []
    participants = {p.user_id: p for p in conversations.list_participants(txn, conversation_id)}
    everyone = conversations.members_of(txn, [conversation_id])
    by_user: dict[str, list[str]] = defaultdict(list)
    for listener in listeners:
        by_user[listener.user_id].append(listener.connection_id)
    frames = []
    for user_id, connection_ids in by_user.items():
        me = participants.get(user_id)
        if me is None or me.consent == DECLINED:
            continue
        (view,) = _views_txn(txn, user_id, [(conversation, me)], now, everyone=everyone,
                             max_group_members=max_group_members)
        frame = conversation_frame(view, change, by=by)
        frames += [(connection_id, frame) for connection_id in connection_ids]
    return frames


def _views_txn(txn: Transaction, user_id: str, mine: list[tuple[Conversation, Participant]],
               now: int, *, everyone: list[Member] | None = None,
               max_group_members: int = PRESENCE_PUSH_MAX_MEMBERS) -> list[dict[str, Any]]:
    """The user's views of `mine`; `everyone` (the members of exactly these conversations)
    when the caller has read them already. `presence_pushed` tells clients whether members'
    `presence` frames come (a 1:1, a group of at most `max_group_members`) or whether to
    refresh this list to keep `online` true."""
    if everyone is None:
        everyone = conversations.members_of(txn, [c.id for c, _ in mine])
    viewer_reads = any(m.read_receipts for m in everyone if m.user_id == user_id)
    blocked = blocks.blocked_between(txn, user_id,
                                     sorted({m.user_id for m in everyone} - {user_id}))
    members = defaultdict(list)
    for member in everyone:
        members[member.conversation_id].append(
            member_view(member, viewer_id=user_id, blocked=member.user_id in blocked,
                        viewer_reads=viewer_reads))
    views = []
    for conversation, me in mine:
        last = messages.newest_message(txn, conversation.id, after_seq=me.joined_seq,
                                       now_ms=now)
        views.append({
            "id": conversation.id, "kind": conversation.kind, "title": conversation.title,
            "ttl_seconds": conversation.ttl_seconds, "last_seq": conversation.last_seq,
            "read_seq": me.read_seq,
            "unread_count": messages.unread_count(txn, conversation.id, user_id,
                                                  read_seq=me.read_seq, now_ms=now),
            "last_message": message_view(last) if last else None,
            "request": me.consent == REQUEST,
            "members": members[conversation.id],
            "presence_pushed": presence_pushed(conversation.kind, len(members[conversation.id]),
                                               max_group_members),
        })
    return views


def member_view(member: Member, *, viewer_id: str, blocked: bool,
                viewer_reads: bool) -> dict[str, Any]:
    """A member as the viewer may see them. Until the member accepts the conversation every
    field privacy hides is null, exactly as for a phone with no account; a block hides
    presence both ways; read cursors go only between people who both share them."""
    view: dict[str, Any] = {"user_id": member.user_id, "phone": member.phone,
                            "role": member.role, "display_name": None, "online": None,
                            "last_seen_at": None, "read_seq": None, "delivered_seq": None}
    if member.user_id != viewer_id and member.consent != ACCEPTED:
        return view
    mine = member.user_id == viewer_id
    view["display_name"] = member.display_name
    view["delivered_seq"] = member.delivered_seq
    if mine or (member.read_receipts and viewer_reads):
        view["read_seq"] = member.read_seq
    if mine or not blocked:
        view["online"] = member.online
        view["last_seen_at"] = member.last_seen_at
    return view


def _parse_cursor(raw: object) -> tuple[int, str] | None:
    if raw is None:
        return None
    match = LIST_CURSOR.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise InvalidInput("cursor must be a next_cursor this API returned")
    return int(match.group(1)), match.group(2)


def member_phones(raw: object) -> list[str]:
    """The `members` field of a create or an add: 1 to MEMBERS_MAX phones, normalised, each
    once."""
    if not isinstance(raw, list) or not raw or len(raw) > MEMBERS_MAX:
        raise InvalidInput(f"members must be a list of 1 to {MEMBERS_MAX} phone numbers")
    phones = []
    for item in raw:
        phone = normalize_phone(item)
        if phone not in phones:
            phones.append(phone)
    return phones


def _title(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw.strip()) > TITLE_MAX:
        raise InvalidInput(f"title must be a string of at most {TITLE_MAX} characters")
    return raw.strip() or None


def _ttl(raw: object) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not TTL_MIN_S <= raw <= TTL_MAX_S:
        raise InvalidInput(f"ttl_seconds must be a whole number from {TTL_MIN_S} to {TTL_MAX_S}")
    return raw
