"""Conversations: 1:1 (de-duplicated per pair) and groups, and what a member sees of them."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from chalicelib.errors import Conflict, Forbidden, InvalidInput, NotFound
from chalicelib.ids import new_id
from chalicelib.phones import normalize_phone
from chalicelib.services.messaging import message_view
from chalicelib.services.realtime import Realtime
from chalicelib.storage import conversations, messages, users
from chalicelib.storage.conversations import Conversation, Participant
from chalicelib.storage.database import Transaction

TTL_MIN_S, TTL_MAX_S, TTL_DEFAULT_S = 10, 30 * 24 * 3600, 24 * 3600
TITLE_MAX = 200
MEMBERS_MAX = 256


def create(user_id: str, fields: dict[str, Any], rt: Realtime) -> tuple[dict[str, Any], bool]:
    """`POST /conversations`: one other phone makes a direct chat (the pair's existing one if
    there is one), any other request a group. A phone with no account becomes a pending user:
    the reply is the same either way. Returns (conversation, created)."""
    phones = _member_phones(fields.get("members"))
    title = _title(fields.get("title"))
    ttl = _ttl(fields.get("ttl_seconds", TTL_DEFAULT_S))
    now = rt.clock.now_ms()

    def create_txn(txn: Transaction) -> tuple[str, bool]:
        me = users.get_user(txn, user_id)
        assert me is not None
        others = [phone for phone in phones if phone != me.phone]
        if not others:
            raise InvalidInput("members must name at least one other phone")
        member_ids = [users.get_or_create_user(txn, new_id=new_id(now), phone=phone,
                                               now_ms=now, activate=False).id
                      for phone in others]
        key = conversations.direct_key(user_id, member_ids[0]) if len(others) == 1 else None
        if key is not None:
            existing = conversations.get_direct_conversation(txn, key)
            if existing is not None:
                return existing.id, False
        conversation = Conversation(
            id=new_id(now), kind="direct" if key else "group", direct_key=key, title=title,
            ttl_seconds=ttl, last_seq=0, created_by=user_id, created_at=now, updated_at=now)
        conversations.insert_conversation(txn, conversation)
        conversations.insert_participants(txn, [
            Participant(conversation.id, member, "owner" if member == user_id else "member",
                        0, 0, 0, now)
            for member in [user_id, *member_ids]
        ])
        return conversation.id, True

    try:
        conversation_id, created = rt.db.run_transaction("conversations.create", create_txn)
    except Conflict:  # the pair's direct chat was created by a concurrent request
        conversation_id, created = rt.db.run_transaction("conversations.create", create_txn)
    return view_one(user_id, conversation_id, rt), created


def list_for(user_id: str, rt: Realtime) -> dict[str, Any]:
    """`GET /conversations`: all of mine, with unread counts, last message and members."""
    now = rt.clock.now_ms()
    views = rt.db.run_read("conversations.list", _views_txn, user_id, None, now)
    return {"server_time": now, "conversations": views}


def view_one(user_id: str, conversation_id: str, rt: Realtime) -> dict[str, Any]:
    views = rt.db.run_read("conversations.view", _views_txn, user_id, conversation_id,
                           rt.clock.now_ms())
    if not views:
        raise NotFound("no such conversation")
    return views[0]


def update(user_id: str, conversation_id: str, fields: dict[str, Any],
           rt: Realtime) -> dict[str, Any]:
    """`PATCH /conversations/{id}`: title and TTL. In a group only the owner and admins may;
    in a direct chat either side. A TTL change applies to messages sent afterwards."""
    set_title = "title" in fields
    title = _title(fields.get("title")) if set_title else None
    ttl = _ttl(fields["ttl_seconds"]) if "ttl_seconds" in fields else None
    if not set_title and ttl is None:
        raise InvalidInput("send title and/or ttl_seconds")
    now = rt.clock.now_ms()

    def update_txn(txn: Transaction) -> None:
        me = conversations.get_participant(txn, conversation_id, user_id)
        conversation = conversations.get_conversation(txn, conversation_id)
        if me is None or conversation is None:
            raise NotFound("no such conversation")
        if conversation.kind == "group" and me.role not in ("owner", "admin"):
            raise Forbidden("only the group's owner and admins can change it")
        conversations.update_settings(txn, conversation_id, title=title, set_title=set_title,
                                      ttl_seconds=ttl, now_ms=now)

    rt.db.run_transaction("conversations.update", update_txn)
    return view_one(user_id, conversation_id, rt)


def _views_txn(txn: Transaction, user_id: str, only: str | None,
               now: int) -> list[dict[str, Any]]:
    mine = [(c, p) for c, p in conversations.conversations_of_user(txn, user_id)
            if only is None or c.id == only]
    members = defaultdict(list)
    for member in conversations.members_of(txn, [c.id for c, _ in mine]):
        members[member.conversation_id].append({
            "user_id": member.user_id, "phone": member.phone, "online": member.online,
            "last_seen_at": member.last_seen_at, "read_seq": member.read_seq,
            "delivered_seq": member.delivered_seq,
        })
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
            "members": members[conversation.id],
        })
    return views


def _member_phones(raw: object) -> list[str]:
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
