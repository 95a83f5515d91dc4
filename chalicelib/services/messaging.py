"""Sending and reading messages: idempotent ordered sends, fan-out, receipts, unread counts,
history and offline sync."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from chalicelib.crypto import sha256_hex
from chalicelib.errors import Conflict, InvalidInput, NotFound, TooLarge
from chalicelib.ids import new_id
from chalicelib.inputs import int_field, string_field
from chalicelib.replies import with_req
from chalicelib.services.limits import NEW_ACCOUNT_MS, SPAM_MIN_BODY
from chalicelib.services.presence import push_frames
from chalicelib.services.realtime import Caller, Realtime
from chalicelib.storage import conversations, messages
from chalicelib.storage.database import Transaction
from chalicelib.storage.messages import IdempotencyKey, Message

MAX_BODY_BYTES = 16 * 1024
CLIENT_MSG_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000
HISTORY_LIMIT, HISTORY_MAX = 50, 200
SYNC_LIMIT, SYNC_MAX = 100, 500
# A push is at most 128 KB; a sync reply stops adding messages well before that (has_more).
SYNC_REPLY_BUDGET_BYTES = 96 * 1024
ID_MAX = 64


def message_view(message: Message) -> dict[str, Any]:
    return {
        "conversation_id": message.conversation_id, "message_id": message.id,
        "seq": message.seq, "sender_id": message.sender_id,
        "sender_device_id": message.sender_device_id, "client_msg_id": message.client_msg_id,
        "body": message.body, "created_at": message.created_at,
        "expires_at": message.expires_at,
    }


# --- send ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Send:
    conversation_id: str
    client_msg_id: str
    body: str


def send(caller: Caller, frame: dict[str, Any], rt: Realtime) -> None:
    """Store the message once and push it to every other connection of every participant.

    One transaction: take the next seq as a member (no row updated: `not_found`), claim the
    (sender, client_msg_id) key, insert. A retry, or the loser of a race between two copies,
    hits the key: its transaction rolls back (seq included, so no gap) and it answers with
    the original's ids. Pushes happen after the commit; a failed push loses nothing, since
    the device catches up with `sync`. (The TTL came with the caller: a TTL changed in the
    same instant may or may not apply to this message, as for any send racing a PATCH.)
    """
    request = _parse_send(frame)
    now = rt.clock.now_ms()
    body_hash = sha256_hex(request.body)
    try:
        message = rt.db.run_transaction("messaging.send", _send_txn, caller, request,
                                        body_hash, now, rt)
    except Conflict:
        _answer_retry(caller, request, body_hash, frame.get("req"), now, rt)
        return
    if message is None:
        raise NotFound("no such conversation")
    sent = _sent_frame(frame.get("req"), request.client_msg_id, message.id, message.seq,
                       message.conversation_id, message.created_at, message.expires_at,
                       duplicate=False)
    audience = _audience(message.conversation_id, rt)
    pushed = {"type": "message", **message_view(message)}
    push_frames([(caller.connection_id, sent)] + [
        (cid, pushed) for cid, _ in audience if cid != caller.connection_id], rt)


def _parse_send(frame: dict[str, Any]) -> _Send:
    conversation_id = string_field(frame, "conversation_id", max_length=ID_MAX)
    client_msg_id = frame.get("client_msg_id")
    if not isinstance(client_msg_id, str) or not CLIENT_MSG_ID.match(client_msg_id):
        raise InvalidInput("client_msg_id must be 8 to 64 of A-Z, a-z, 0-9, _ and -")
    body = frame.get("body")
    if not isinstance(body, str) or not body:
        raise InvalidInput("body must be a non-empty string")
    if len(body.encode("utf-8")) > MAX_BODY_BYTES:
        raise TooLarge(f"body is over {MAX_BODY_BYTES} bytes of UTF-8")
    return _Send(conversation_id, client_msg_id, body)


def _send_limits(caller: Caller, request: _Send, body_hash: str,
                 now: int) -> list[tuple[str, str]]:
    """The send policies that apply: a burst and a sustained rate per sender (stricter for an
    account younger than a day), a rate per conversation, and identical bodies (spam's tell)
    from one sender across conversations."""
    new_account = now - caller.account_since < NEW_ACCOUNT_MS
    checks = [("send_burst_per_user", caller.user_id),
              ("send_per_new_user" if new_account else "send_per_user", caller.user_id),
              ("send_per_conversation", request.conversation_id)]
    if len(request.body) >= SPAM_MIN_BODY:
        checks.append(("send_same_body", f"{caller.user_id}:{body_hash}"))
    return checks


def _send_txn(txn: Transaction, caller: Caller, request: _Send, body_hash: str,
              now: int, rt: Realtime) -> Message | None:
    # Limits first: a denial rolls back the whole send, its own hits included.
    rt.limiter.check_txn(txn, _send_limits(caller, request, body_hash, now), now)
    seq = conversations.allocate_seq(txn, request.conversation_id, caller.user_id)
    if seq is None:
        return None
    ttl_s = caller.conversation_ttl_s
    if ttl_s is None:  # read with the caller before the conversation existed: read it now
        ttl_s = conversations.get_conversation(txn, request.conversation_id).ttl_seconds
    message = Message(
        id=new_id(now), conversation_id=request.conversation_id, seq=seq,
        sender_id=caller.user_id, sender_device_id=caller.device_id,
        client_msg_id=request.client_msg_id, body=request.body, created_at=now,
        expires_at=now + ttl_s * 1000,
    )
    messages.insert_idempotency_key(txn, IdempotencyKey(
        sender_id=caller.user_id, client_msg_id=request.client_msg_id,
        conversation_id=request.conversation_id, message_id=message.id, seq=seq,
        body_hash=body_hash,
        created_at=now, message_expires_at=message.expires_at,
        keep_until=max(now + IDEMPOTENCY_WINDOW_MS, message.expires_at),
    ))
    messages.insert_message(txn, message)
    return message


def _answer_retry(caller: Caller, request: _Send, body_hash: str, req: Any, now: int,
                  rt: Realtime) -> None:
    key = rt.db.run_read("messaging.retry", messages.get_idempotency_key, caller.user_id,
                         request.client_msg_id)
    if key is None:  # the key's holder rolled back meanwhile: rare, and safe to say so
        raise Conflict("that send is still in progress; retry it")
    if key.conversation_id != request.conversation_id or key.body_hash != body_hash:
        raise Conflict("client_msg_id was already used for another message")
    expired = key.message_expires_at <= now
    frame = _sent_frame(req, key.client_msg_id, key.message_id, key.seq, key.conversation_id,
                        key.created_at, key.message_expires_at, duplicate=True)
    if expired:
        frame["expired"] = True
    push_frames([(caller.connection_id, frame)], rt)


def _sent_frame(req: Any, client_msg_id: str, message_id: str, seq: int, conversation_id: str,
                created_at: int, expires_at: int, *, duplicate: bool) -> dict[str, Any]:
    return with_req({"type": "sent", "conversation_id": conversation_id,
                      "client_msg_id": client_msg_id, "message_id": message_id, "seq": seq,
                      "created_at": created_at, "expires_at": expires_at,
                      "duplicate": duplicate}, req)


# --- receipts -----------------------------------------------------------------------------


def ack(caller: Caller, frame: dict[str, Any], rt: Realtime) -> None:
    """"This device holds everything up to seq": the user's delivered cursor moves forward
    (any device's ack counts), and the other participants get a `delivered` receipt."""
    conversation_id, seq = _cursor_frame(frame)
    moved = rt.db.run_transaction("messaging.ack", _advance_txn, conversation_id,
                                  caller.user_id, {"delivered": seq})
    if moved:
        push_frames(_receipts(caller, conversation_id, moved, _audience(conversation_id, rt)),
                    rt)


def read(caller: Caller, frame: dict[str, Any], rt: Realtime) -> None:
    """"I have read up to seq": the read cursor (and delivered, which reading implies) moves
    forward; others get receipts, my own devices the new unread count."""
    conversation_id, seq = _cursor_frame(frame)
    now = rt.clock.now_ms()
    moved = rt.db.run_transaction("messaging.read", _advance_txn, conversation_id,
                                  caller.user_id, {"read": seq, "delivered": seq})
    if not moved:
        return
    audience = _audience(conversation_id, rt)  # my own connections are in it too
    frames = _receipts(caller, conversation_id, moved, audience)
    if "read" in moved:
        count = rt.db.run_read("messaging.unread", messages.unread_count, conversation_id,
                               caller.user_id, read_seq=moved["read"], now_ms=now)
        unread = {"type": "unread", "conversation_id": conversation_id, "count": count}
        frames += [(cid, unread) for cid, user_id in audience if user_id == caller.user_id]
    push_frames(frames, rt)


def _cursor_frame(frame: dict[str, Any]) -> tuple[str, int]:
    return (string_field(frame, "conversation_id", max_length=ID_MAX),
            int_field(frame, "seq", minimum=0))


def _advance_txn(txn: Transaction, conversation_id: str, user_id: str,
                 targets: dict[str, int]) -> dict[str, int]:
    moved = {}
    for cursor, seq in targets.items():
        value = conversations.advance_cursor(txn, conversation_id, user_id, cursor, seq)
        if value is not None:
            moved[cursor] = value
    if not moved and conversations.get_participant(txn, conversation_id, user_id) is None:
        raise NotFound("no such conversation")
    return moved


def _audience(conversation_id: str, rt: Realtime) -> list[tuple[str, str]]:
    """(connection id, user id) of every live connection of every participant."""
    return rt.db.run_read("messaging.audience", conversations.connections_of_conversation,
                          conversation_id)


def _receipts(caller: Caller, conversation_id: str, moved: dict[str, int],
              audience: list[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    """A receipt per moved cursor, for the other participants' connections."""
    return [
        (cid, {"type": "receipt", "conversation_id": conversation_id,
               "user_id": caller.user_id, "kind": kind, "seq": seq})
        for kind, seq in sorted(moved.items()) for cid, user_id in audience
        if user_id != caller.user_id
    ]


# --- reading ------------------------------------------------------------------------------


def history(user_id: str, conversation_id: str, query: dict[str, Any],
            rt: Realtime) -> dict[str, Any]:
    """`GET /conversations/{id}/messages`: unexpired messages after `after_seq`, ascending."""
    after_seq = int_field(query, "after_seq", default=0)
    limit = int_field(query, "limit", minimum=1, maximum=HISTORY_MAX, default=HISTORY_LIMIT)
    now = rt.clock.now_ms()

    def history_txn(txn: Transaction) -> dict[str, Any]:
        me = conversations.get_participant(txn, conversation_id, user_id)
        if me is None:
            raise NotFound("no such conversation")
        page = messages.messages_after(txn, conversation_id, after_seq=max(after_seq,
                                       me.joined_seq), now_ms=now, limit=limit + 1)
        return {"messages": [message_view(m) for m in page[:limit]],
                "has_more": len(page) > limit}

    return rt.db.run_read("messaging.history", history_txn)


def sync(caller: Caller, frame: dict[str, Any], rt: Realtime) -> None:
    """What this device missed, per conversation, from its cursors (a conversation it does
    not list comes from its start); paged by `limit` and by the size of one push."""
    cursors = frame.get("cursors", {})
    if not isinstance(cursors, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in cursors.items()):
        raise InvalidInput("cursors must map conversation ids to whole numbers")
    limit = int_field(frame, "limit", minimum=1, maximum=SYNC_MAX, default=SYNC_LIMIT)
    now = rt.clock.now_ms()
    entries = rt.db.run_read("messaging.sync", _sync_txn, caller.user_id, cursors, limit, now)
    reply = with_req({"type": "sync", "server_time": now, "conversations": _fit(entries)},
                     frame.get("req"))
    push_frames([(caller.connection_id, reply)], rt)


def _sync_txn(txn: Transaction, user_id: str, cursors: dict[str, int], limit: int,
              now: int) -> list[dict[str, Any]]:
    mine = conversations.conversations_of_user(txn, user_id)
    if set(cursors) - {conversation.id for conversation, _ in mine}:
        raise NotFound("no such conversation")
    entries = []
    for conversation, me in mine:
        after = max(cursors.get(conversation.id, 0), me.joined_seq)
        page = messages.messages_after(txn, conversation.id, after_seq=after, now_ms=now,
                                       limit=limit + 1)
        first = messages.oldest_available_seq(txn, conversation.id, after_seq=me.joined_seq,
                                              now_ms=now)
        entries.append({
            "conversation_id": conversation.id, "last_seq": conversation.last_seq,
            "read_seq": me.read_seq,
            "unread_count": messages.unread_count(txn, conversation.id, user_id,
                                                  read_seq=me.read_seq, now_ms=now),
            "messages": [message_view(m) for m in page[:limit]],
            "has_more": len(page) > limit,
            "first_seq": first if first is not None else conversation.last_seq + 1,
        })
    return entries


def _fit(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the reply inside one push: past the byte budget, messages are left for the next
    page (has_more) rather than making a frame API Gateway would refuse."""
    budget = SYNC_REPLY_BUDGET_BYTES
    for entry in entries:
        kept = []
        for message in entry["messages"]:
            size = len(json.dumps(message, ensure_ascii=False).encode())
            if size > budget:
                entry["has_more"] = True
                break
            budget -= size
            kept.append(message)
        entry["messages"] = kept
    return entries
