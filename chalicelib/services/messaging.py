"""Sending messages and moving cursors: idempotent ordered sends, fan-out, receipts, unread
counts. (History and offline sync are in `reading.py`.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chalicelib.crypto import keyed_hash, same
from chalicelib.errors import (
    Conflict,
    EphemeraError,
    Forbidden,
    InvalidInput,
    NotFound,
    TooLarge,
)
from chalicelib.ids import new_id
from chalicelib.inputs import int_field, string_field
from chalicelib.services.delivery import push_frames
from chalicelib.services.limits import NEW_ACCOUNT_MS, SPAM_MIN_BODY
from chalicelib.services.presence import reveal
from chalicelib.services.realtime import Caller, Realtime
from chalicelib.storage import conversations, messages
from chalicelib.storage.conversations import ACCEPTED, DECLINED, REQUEST, Listener
from chalicelib.storage.database import Transaction
from chalicelib.storage.messages import IdempotencyKey, Message
from chalicelib.wire import message_frame, with_req

MAX_BODY_BYTES = 16 * 1024
CLIENT_MSG_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000
ID_MAX = 64


# --- send ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Send:
    conversation_id: str
    client_msg_id: str
    body: str


def send(caller: Caller, frame: dict[str, Any], rt: Realtime) -> None:
    """Store the message once and push it to every other connection of every participant.

    Everything answered without storing anything is answered before any locking transaction,
    from what the caller's one read already knew: a retry (answered from the stored key, even
    if a block or a departure came since), not a member (`not_found`, and no conversation
    budget spent), blocked in a direct chat (`forbidden`). Each still passes the frame limit.

    A fresh send is one transaction: its limits, the next seq as a member (no row updated:
    `not_found`), the (sender, client_msg_id) key, the message. The loser of a race between
    two copies hits the key: its transaction rolls back (seq included, so no gap) and it is
    answered as a retry. Pushes happen after the commit; a failed push loses nothing, since
    the device catches up with `sync`.
    """
    now = rt.clock.now_ms()
    try:
        request = _parse_send(frame)
        if caller.prior_send is None:  # a retry gets the same answer, whatever came since
            _admit(caller)
    except EphemeraError:
        count_frame(caller.connection_id, rt)
        raise
    body_hash = keyed_hash(rt.keys.body, request.body)
    limits = _send_limits(caller, request, body_hash, now)
    if caller.prior_send is not None:
        rt.limiter.check(limits)
        _answer_retry(caller, caller.prior_send, request, body_hash, frame.get("req"), now, rt)
        return
    try:
        message = rt.db.run_transaction("messaging.send", _send_txn, caller, request,
                                        body_hash, limits, now, rt)
    except Conflict:
        rt.limiter.check(limits)
        prior = rt.db.run_read("messaging.retry", messages.get_idempotency_key,
                               caller.user_id, request.client_msg_id)
        if prior is None:  # the key's holder rolled back meanwhile: rare, and safe to say so
            raise Conflict("that send is still in progress; retry it") from None
        _answer_retry(caller, prior, request, body_hash, frame.get("req"), now, rt)
        return
    except NotFound:  # left or removed since the caller's read
        count_frame(caller.connection_id, rt)
        raise
    sent = _sent_frame(frame.get("req"), request.client_msg_id, message.id, message.seq,
                       message.conversation_id, message.created_at, message.expires_at,
                       duplicate=False)
    audience = _audience(message.conversation_id, rt, sender_id=caller.user_id)
    pushed = message_frame(message)
    push_frames([(caller.connection_id, sent)] + [
        (listener.connection_id, pushed) for listener in audience
        if listener.connection_id != caller.connection_id and not listener.blocks_sender
    ], rt)
    if caller.conversation is not None and caller.conversation.consent == REQUEST:
        reveal(caller.user_id, message.conversation_id, rt)  # sending accepted it


def count_frame(connection_id: str, rt: Realtime) -> None:
    """One frame against the connection's budget, in a transaction of its own (kept)."""
    rt.limiter.check([("frames_per_connection", connection_id)])


def _admit(caller: Caller) -> None:
    named = caller.conversation
    if named is None or named.consent in (None, DECLINED):
        raise NotFound("no such conversation")
    if named.blocked:
        raise Forbidden("you cannot send to this conversation")


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
    """The send policies that apply: the connection's frame budget, a burst and a sustained
    rate per sender (stricter for an account younger than a day), a rate per conversation,
    and identical bodies (spam's tell) from one sender across conversations."""
    new_account = now - caller.account_since < NEW_ACCOUNT_MS
    checks = [("frames_per_connection", caller.connection_id),
              ("send_burst_per_user", caller.user_id),
              ("send_per_new_user" if new_account else "send_per_user", caller.user_id),
              ("send_per_conversation", request.conversation_id)]
    if len(request.body) >= SPAM_MIN_BODY:
        checks.append(("send_same_body", f"{caller.user_id}:{body_hash}"))
    return checks


def _send_txn(txn: Transaction, caller: Caller, request: _Send, body_hash: str,
              limits: list[tuple[str, str]], now: int, rt: Realtime) -> Message:
    # Limits first: a denial rolls back the whole send, its own hits included.
    rt.limiter.check_txn(txn, limits, now)
    seq = conversations.allocate_seq(txn, request.conversation_id, caller.user_id, now)
    if seq is None:
        raise NotFound("no such conversation")
    assert caller.conversation is not None  # _admit checked it
    if caller.conversation.consent == REQUEST:
        conversations.set_consent(txn, request.conversation_id, caller.user_id, ACCEPTED)
    message = Message(
        id=new_id(now), conversation_id=request.conversation_id, seq=seq,
        sender_id=caller.user_id, sender_device_id=caller.device_id,
        client_msg_id=request.client_msg_id, body=request.body, created_at=now,
        expires_at=now + caller.conversation.ttl_seconds * 1000,
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


def _answer_retry(caller: Caller, key: IdempotencyKey, request: _Send, body_hash: str,
                  req: Any, now: int, rt: Realtime) -> None:
    # A key stored before bodies were hashed with a key has no hash left (erased by the
    # migration): it is matched on its conversation alone.
    same_body = not key.body_hash or same(key.body_hash, body_hash)
    if key.conversation_id != request.conversation_id or not same_body:
        raise Conflict("client_msg_id was already used for another message")
    frame = _sent_frame(req, key.client_msg_id, key.message_id, key.seq, key.conversation_id,
                        key.created_at, key.message_expires_at, duplicate=True)
    if key.message_expires_at <= now:
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
        frames += [(listener.connection_id, unread) for listener in audience
                   if listener.user_id == caller.user_id]
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
    if not moved:
        me = conversations.get_participant(txn, conversation_id, user_id)
        if me is None or me.consent == DECLINED:
            raise NotFound("no such conversation")
    return moved


def _audience(conversation_id: str, rt: Realtime,
              sender_id: str | None = None) -> list[Listener]:
    """Every live connection of every participant who has not declined (and whether each
    blocked `sender_id`)."""
    return rt.db.run_read("messaging.audience", conversations.connections_of_conversation,
                          conversation_id, sender_id)


def _receipts(caller: Caller, conversation_id: str, moved: dict[str, int],
              audience: list[Listener]) -> list[tuple[str, dict[str, Any]]]:
    """A receipt per moved cursor, for the other participants' connections. Nothing while
    the caller has not accepted the conversation (a request reveals nothing), and `read`
    receipts only between people who both have read receipts on."""
    mine = next((listener for listener in audience if listener.user_id == caller.user_id),
                None)
    if mine is None or mine.consent != ACCEPTED:
        return []
    return [
        (listener.connection_id, {"type": "receipt", "conversation_id": conversation_id,
                                  "user_id": caller.user_id, "kind": kind, "seq": seq})
        for kind, seq in sorted(moved.items()) for listener in audience
        if listener.user_id != caller.user_id
        and (kind != "read" or (mine.read_receipts and listener.read_receipts))
    ]
