"""The wire format: every frame the server pushes, built in one place (no Chalice here, so
services, the schedule and tests share it)."""

from __future__ import annotations

from typing import Any

from chalicelib.errors import EphemeraError
from chalicelib.storage.messages import IdempotencyKey, Message

Frame = dict[str, Any]


def with_req(frame: Frame, req: Any) -> Frame:
    """A reply frame echoing the client's `req`, when the client sent one."""
    return frame if req is None else {**frame, "req": req}


def error_frame(error: EphemeraError, req: Any = None) -> Frame:
    """The `error` frame: the same fields as REST's `error` object, plus `req` if given."""
    return with_req({"type": "error", **error.to_error()}, req)


def message_view(message: Message) -> Frame:
    """A message as history, sync and the `message` frame show it."""
    return {
        "conversation_id": message.conversation_id, "message_id": message.id,
        "seq": message.seq, "sender_id": message.sender_id,
        "sender_device_id": message.sender_device_id, "client_msg_id": message.client_msg_id,
        "body": message.body, "created_at": message.created_at,
        "expires_at": message.expires_at,
    }


def message_frame(message: Message) -> Frame:
    return {"type": "message", **message_view(message)}


def sent_frame(key: IdempotencyKey, *, duplicate: bool, now_ms: int, req: Any) -> Frame:
    """The answer to one stored message; a retry's says `duplicate` (and `expired` once the
    message is gone)."""
    frame: Frame = {"type": "sent", "conversation_id": key.conversation_id,
                    "client_msg_id": key.client_msg_id, "message_id": key.message_id,
                    "seq": key.seq, "created_at": key.created_at,
                    "expires_at": key.message_expires_at, "duplicate": duplicate}
    if duplicate and key.message_expires_at <= now_ms:
        frame["expired"] = True
    return with_req(frame, req)


def receipt_frame(conversation_id: str, user_id: str, kind: str, seq: int) -> Frame:
    return {"type": "receipt", "conversation_id": conversation_id, "user_id": user_id,
            "kind": kind, "seq": seq}


def unread_frame(conversation_id: str, count: int) -> Frame:
    return {"type": "unread", "conversation_id": conversation_id, "count": count}


def presence_frame(user_id: str, *, online: bool | None, last_seen_at: int | None) -> Frame:
    return {"type": "presence", "user_id": user_id, "online": online,
            "last_seen_at": last_seen_at}


def expired_frame(conversation_id: str, ranges: list[list[int]], *, up_to_seq: int,
                  reason: str = "expired") -> Frame:
    return {"type": "expired", "conversation_id": conversation_id, "ranges": ranges,
            "up_to_seq": up_to_seq, "reason": reason}


def pong_frame(server_time: int, req: Any) -> Frame:
    return with_req({"type": "pong", "server_time": server_time}, req)


def member_frame(conversation_id: str, user_id: str, change: str, *, by: str,
                 role: str | None = None) -> Frame:
    """A membership change: `added`, `removed`, `left` or `role` (with the new `role`)."""
    frame: Frame = {"type": "member", "conversation_id": conversation_id, "user_id": user_id,
                    "change": change, "by": by}
    if role is not None:
        frame["role"] = role
    return frame


def conversation_frame(conversation: Frame, change: str, *, by: str) -> Frame:
    """A conversation as `GET /conversations` lists it for the receiving user, `created` with
    them or `updated` (title, TTL)."""
    return {"type": "conversation", "conversation": conversation, "change": change, "by": by}


def typing_frame(conversation_id: str, user_id: str, *, active: bool, at: int) -> Frame:
    """`at`: when the typist's frame reached the server, for receivers to keep the newest."""
    return {"type": "typing", "conversation_id": conversation_id, "user_id": user_id,
            "active": active, "at": at}
