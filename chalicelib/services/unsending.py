"""Taking a message back (`unsend`): the sender deletes their own message before it expires.

The message row is deleted outright, no tombstone, in one transaction with its idempotency
key's new end (the key stays, so a retried `send` of it is answered `duplicate` and `expired`
instead of storing it again) and the reads the announcement needs. Then every live connection
of every participant gets `expired` with `reason: "unsent"`, the same frame the expiry engine
sends, and the members whose unread count included it get their new count. No body is read,
returned or logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.errors import Forbidden, Gone, InvalidInput, NotFound
from chalicelib.inputs import MAX_SAFE_INTEGER, string_field
from chalicelib.services.context import Caller, Context
from chalicelib.services.delivery import push_frames
from chalicelib.storage import conversations, messages
from chalicelib.storage.conversations import DECLINED
from chalicelib.storage.database import Transaction
from chalicelib.wire import Frame, expired_frame, unread_frame, with_req

ID_MAX = 64
UNSENT = "unsent"


@dataclass(frozen=True)
class _Unsent:
    """What the transaction learnt for the announcement."""

    up_to_seq: int
    connections: list[tuple[str, str]]  # (connection id, user id) of every live member
    unread: dict[str, int]  # user id -> new count, for the members whose count fell


def unsend(caller: Caller, frame: dict[str, Any], ctx: Context) -> None:
    """Delete the caller's message at `seq` and tell everyone in the conversation; the
    caller's own connection gets the `expired` frame with its `req`, as the answer. (The
    frame was counted against the connection's budget before, like any frame.)"""
    conversation_id = string_field(frame, "conversation_id", max_length=ID_MAX)
    seq = _seq_of(frame)
    now = ctx.clock.now_ms()
    unsent = ctx.db.run_transaction("unsending.unsend", _unsend_txn, conversation_id, seq,
                                   caller.user_id, now)
    push_frames(_announcement(caller, frame.get("req"), conversation_id, seq, unsent), ctx)


def _seq_of(frame: dict[str, Any]) -> int:
    """A JSON whole number of at least 1 (no strings, no booleans), else `bad_request`."""
    seq = frame.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SAFE_INTEGER:
        raise InvalidInput(f"seq must be a whole number from 1 to {MAX_SAFE_INTEGER}")
    return seq


def _unsend_txn(txn: Transaction, conversation_id: str, seq: int, user_id: str,
                now: int) -> _Unsent:
    target = messages.unsend_target(txn, conversation_id, user_id, seq)
    if target is None or target.consent == DECLINED:
        raise NotFound("no such conversation")
    if not target.joined_seq < seq <= target.last_seq:
        raise NotFound("no such message")  # never sent, or before the caller joined
    if target.message_id is None or target.expires_at is None or target.expires_at <= now:
        raise Gone("that message is gone")
    if target.sender_id != user_id:
        raise Forbidden("only its sender can unsend a message")
    if not messages.delete_unsent(txn, conversation_id, seq, sender_id=user_id, now_ms=now):
        raise Gone("that message is gone")  # taken meanwhile by another unsend or expiry
    assert target.client_msg_id is not None
    messages.end_idempotent_message(txn, user_id, target.client_msg_id, target.message_id,
                                    now_ms=now)
    listeners = conversations.connections_of_conversation(txn, conversation_id)
    unread = {
        member.user_id: messages.unread_count(txn, conversation_id, member.user_id,
                                              read_seq=member.read_seq, now_ms=now)
        for member in conversations.list_participants(txn, conversation_id)
        if member.consent != DECLINED and member.user_id != user_id and seq > member.read_seq
    }
    up_to_seq = messages.gone_up_to(txn, conversation_id, last_seq=target.last_seq)
    return _Unsent(up_to_seq, [(lst.connection_id, lst.user_id) for lst in listeners], unread)


def _announcement(caller: Caller, req: Any, conversation_id: str, seq: int,
                  unsent: _Unsent) -> list[tuple[str, Frame]]:
    """`expired` to every live connection (the caller's own with `req`), then `unread` to
    the connections of members whose count fell."""
    expired = expired_frame(conversation_id, [[seq, seq]], up_to_seq=unsent.up_to_seq,
                            reason=UNSENT)
    targets = [cid for cid, _ in unsent.connections]
    if caller.connection_id not in targets:
        targets.append(caller.connection_id)  # it always answers the caller
    frames = [(cid, with_req(expired, req) if cid == caller.connection_id else expired)
              for cid in targets]
    frames += [(cid, unread_frame(conversation_id, unsent.unread[user_id]))
               for cid, user_id in unsent.connections if user_id in unsent.unread]
    return frames
