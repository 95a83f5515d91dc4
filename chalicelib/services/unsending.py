"""Taking a message back (`unsend`): the sender deletes their own message before it expires.

The message row is deleted outright, no tombstone, in one transaction with its idempotency
key's new end (the key stays, so a retried `send` of it is answered `duplicate` and `expired`
instead of storing it again) and the reads the announcement needs. Then every live connection
of every participant gets `expired` with `reason: "unsent"`, the same frame the expiry engine
sends, and the members whose unread count included it get their new count. No body is read,
returned or logged.
"""

from __future__ import annotations

from typing import Any

from chalicelib.errors import Forbidden, Gone, InvalidInput, NotFound
from chalicelib.inputs import MAX_SAFE_INTEGER, string_field
from chalicelib.services.context import Caller, Context
from chalicelib.services.delivery import push_frames
from chalicelib.services.expiry import deletion_frames_txn
from chalicelib.storage import messages
from chalicelib.storage.conversations import DECLINED
from chalicelib.storage.database import Transaction
from chalicelib.wire import Frame, with_req

ID_MAX = 64
UNSENT = "unsent"


def unsend(caller: Caller, frame: dict[str, Any], ctx: Context) -> None:
    """Delete the caller's message at `seq` and tell everyone in the conversation as every
    deletion is told (`expiry.deletion_frames_txn`); the caller's own connection gets the
    `expired` frame with its `req`, as the answer. (The frame was counted against the
    connection's budget before, like any frame.)"""
    conversation_id = string_field(frame, "conversation_id", max_length=ID_MAX)
    seq = _seq_of(frame)
    now = ctx.clock.now_ms()
    told = ctx.db.run_transaction("unsending.unsend", _unsend_txn, conversation_id, seq,
                                  caller.user_id, now)
    push_frames(_answering(caller.connection_id, frame.get("req"), told), ctx,
                answering=caller.connection_id)


def _seq_of(frame: dict[str, Any]) -> int:
    """A JSON whole number of at least 1 (no strings, no booleans), else `bad_request`."""
    seq = frame.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SAFE_INTEGER:
        raise InvalidInput(f"seq must be a whole number from 1 to {MAX_SAFE_INTEGER}")
    return seq


def _unsend_txn(txn: Transaction, conversation_id: str, seq: int, user_id: str,
                now: int) -> list[tuple[str, Frame]]:
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
    return deletion_frames_txn(txn, conversation_id, [(seq, user_id)], now, reason=UNSENT)


def _answering(connection_id: str, req: Any,
               told: list[tuple[str, Frame]]) -> list[tuple[str, Frame]]:
    """The asking connection's `expired` carries its `req`; it always gets one, even if it
    was not among the listeners read."""
    expired = next((frame for _, frame in told if frame["type"] == "expired"), None)
    answered = [(cid, with_req(frame, req) if cid == connection_id and frame is expired
                 else frame) for cid, frame in told]
    if expired is not None and (connection_id, expired) not in told:
        answered.insert(0, (connection_id, with_req(expired, req)))
    return answered
