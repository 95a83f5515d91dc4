"""Messages: insert at an allocated seq, read unexpired ones by cursor, delete expired ones."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Transaction


@dataclass(frozen=True)
class Message:
    id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_device_id: str
    client_msg_id: str
    body: str
    created_at: int
    expires_at: int


@dataclass(frozen=True)
class DeletedMessage:
    conversation_id: str
    seq: int


def insert_message(txn: Transaction, message: Message) -> None:
    txn.execute(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, sender_device_id,"
        " client_msg_id, body, created_at, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (message.id, message.conversation_id, message.seq, message.sender_id,
         message.sender_device_id, message.client_msg_id, message.body, message.created_at,
         message.expires_at),
    )


def messages_after(
    txn: Transaction, conversation_id: str, *, after_seq: int, now_ms: int, limit: int
) -> list[Message]:
    """Unexpired messages with seq > after_seq, ascending, at most `limit`.

    `expires_at > now` is in the query itself: a message is unreadable from the millisecond
    it expires, whether or not the expiry engine has deleted it yet.
    """
    txn.execute(
        "SELECT id, conversation_id, seq, sender_id, sender_device_id, client_msg_id, body,"
        " created_at, expires_at FROM messages"
        " WHERE conversation_id = %s AND seq > %s AND expires_at > %s"
        " ORDER BY seq LIMIT %s",
        (conversation_id, after_seq, now_ms, limit),
    )
    return [Message(**row) for row in txn.fetchall()]


def delete_expired_batch(txn: Transaction, *, now_ms: int, limit: int) -> list[DeletedMessage]:
    """Delete up to `limit` messages whose expiry has passed, oldest expiry first.

    Walks the `expires_at` index (no table scan) and deletes by primary key, so the
    transaction is short and locks only the rows it removes.
    """
    txn.execute(
        "SELECT id, conversation_id, seq FROM messages WHERE expires_at <= %s"
        " ORDER BY expires_at LIMIT %s",
        (now_ms, limit),
    )
    rows = txn.fetchall()
    if not rows:
        return []
    placeholders = ", ".join(["%s"] * len(rows))  # only placeholders are formatted in
    txn.execute(
        f"DELETE FROM messages WHERE id IN ({placeholders})",  # noqa: S608
        [row["id"] for row in rows],
    )
    return [DeletedMessage(r["conversation_id"], r["seq"]) for r in rows]

