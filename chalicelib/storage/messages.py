"""Messages: insert at an allocated seq, read unexpired ones by cursor, delete expired ones."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Later, Transaction, insert_rows_later, placeholders


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
    sender_id: str


def insert_messages(txn: Transaction, batch: list[Message]) -> None:
    """Queue: store the messages in one statement (sent with the transaction's COMMIT)."""
    insert_rows_later(txn, "messages", batch)


def insert_message(txn: Transaction, message: Message) -> None:
    insert_messages(txn, [message])


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


def messages_before(
    txn: Transaction, conversation_id: str, *, before_seq: int, floor_seq: int, now_ms: int,
    limit: int
) -> list[Message]:
    """The newest unexpired messages with floor_seq < seq < before_seq, at most `limit`,
    ascending (scrolling back through history)."""
    txn.execute(
        "SELECT id, conversation_id, seq, sender_id, sender_device_id, client_msg_id, body,"
        " created_at, expires_at FROM messages"
        " WHERE conversation_id = %s AND seq < %s AND seq > %s AND expires_at > %s"
        " ORDER BY seq DESC LIMIT %s",
        (conversation_id, before_seq, floor_seq, now_ms, limit),
    )
    return [Message(**row) for row in reversed(txn.fetchall())]


def messages_after_within(
    txn: Transaction, conversation_id: str, *, after_seq: int, now_ms: int, limit: int,
    max_bytes: int, overhead_bytes: int
) -> tuple[list[Message], int, bool]:
    """Unexpired messages after `after_seq`, ascending: at most `limit`, and no more than fit
    in `max_bytes` (each body's UTF-8 size plus `overhead_bytes`). Returns (messages, rows
    examined, whether more remain). The sizes are read first, so no body that does not fit
    is ever fetched: the work is bounded by `limit` rows and `max_bytes`."""
    size = txn.engine.octet_length("body")
    txn.execute(
        f"SELECT seq, {size} AS size FROM messages"  # noqa: S608 - an engine's fixed expression
        " WHERE conversation_id = %s AND seq > %s AND expires_at > %s ORDER BY seq LIMIT %s",
        (conversation_id, after_seq, now_ms, limit + 1),
    )
    sizes = txn.fetchall()
    fitting, total = [], 0
    for row in sizes[:limit]:
        total += int(row["size"]) + overhead_bytes
        if total > max_bytes:
            break
        fitting.append(int(row["seq"]))
    more = len(fitting) < len(sizes)
    if not fitting:
        return [], len(sizes), more
    txn.execute(
        "SELECT id, conversation_id, seq, sender_id, sender_device_id, client_msg_id, body,"
        " created_at, expires_at FROM messages"
        " WHERE conversation_id = %s AND seq BETWEEN %s AND %s AND expires_at > %s"
        " ORDER BY seq",
        (conversation_id, fitting[0], fitting[-1], now_ms),
    )
    return [Message(**row) for row in txn.fetchall()], len(sizes), more


def delete_expired_batch(txn: Transaction, *, now_ms: int, limit: int) -> list[DeletedMessage]:
    """Delete up to `limit` messages whose expiry has passed, oldest expiry first.

    Walks the `expires_at` index (no table scan) and deletes by primary key, so the
    transaction is short and locks only the rows it removes.
    """
    txn.execute(
        "SELECT id, conversation_id, seq, sender_id FROM messages WHERE expires_at <= %s"
        " ORDER BY expires_at LIMIT %s",
        (now_ms, limit),
    )
    rows = txn.fetchall()
    if not rows:
        return []
    in_list = placeholders(rows)
    txn.execute(
        f"DELETE FROM messages WHERE id IN ({in_list})",  # noqa: S608
        [row["id"] for row in rows],
    )
    return [DeletedMessage(r["conversation_id"], r["seq"], r["sender_id"]) for r in rows]



@dataclass(frozen=True)
class IdempotencyKey:
    """What a send was, kept (without its body) so that a retry gets the same answer."""

    sender_id: str
    client_msg_id: str
    conversation_id: str
    message_id: str
    seq: int
    body_hash: str
    created_at: int
    message_expires_at: int
    keep_until: int


def insert_idempotency_keys(txn: Transaction, keys: list[IdempotencyKey]) -> None:
    """Queue: store the keys in one statement. It fails with the engine's duplicate-key error
    (and so does the transaction) when this sender used one of the ids before."""
    insert_rows_later(txn, "idempotency_keys", keys)


def idempotency_keys_of(txn: Transaction, sender_id: str,
                        client_msg_ids: list[str]) -> dict[str, IdempotencyKey]:
    """The sender's stored keys among `client_msg_ids`, by id."""
    if not client_msg_ids:
        return {}
    txn.execute(
        "SELECT sender_id, client_msg_id, conversation_id, message_id, seq, body_hash,"  # noqa: S608
        " created_at, message_expires_at, keep_until FROM idempotency_keys"
        f" WHERE sender_id = %s AND client_msg_id IN ({placeholders(client_msg_ids)})",
        (sender_id, *client_msg_ids),
    )
    return {row["client_msg_id"]: IdempotencyKey(**row) for row in txn.fetchall()}


def newest_message(txn: Transaction, conversation_id: str, *, after_seq: int,
                   now_ms: int) -> Message | None:
    """The newest unexpired message with seq > after_seq (walks the (conversation, seq)
    index backwards)."""
    txn.execute(
        "SELECT id, conversation_id, seq, sender_id, sender_device_id, client_msg_id, body,"
        " created_at, expires_at FROM messages"
        " WHERE conversation_id = %s AND seq > %s AND expires_at > %s"
        " ORDER BY seq DESC LIMIT 1",
        (conversation_id, after_seq, now_ms),
    )
    row = txn.fetchone()
    return Message(**row) if row else None


def oldest_available_seq(txn: Transaction, conversation_id: str, *, after_seq: int,
                         now_ms: int) -> int | None:
    txn.execute(
        "SELECT MIN(seq) AS seq FROM messages"
        " WHERE conversation_id = %s AND seq > %s AND expires_at > %s",
        (conversation_id, after_seq, now_ms),
    )
    row = txn.fetchone()
    return int(row["seq"]) if row and row["seq"] is not None else None


def unread_count(txn: Transaction, conversation_id: str, user_id: str, *, read_seq: int,
                 now_ms: int) -> int:
    """Invariant 6, computed, never stored: messages after my read cursor, not mine, not
    expired. An index range on (conversation_id, seq), so it cannot drift."""
    return unread_count_later(txn, conversation_id, user_id, read_seq=read_seq,
                              now_ms=now_ms).value


def unread_count_later(txn: Transaction, conversation_id: str, user_id: str, *,
                       read_seq: int, now_ms: int) -> Later[int]:
    """Queue `unread_count`'s query."""
    return txn.later(
        "SELECT COUNT(*) AS n FROM messages WHERE conversation_id = %s AND seq > %s"
        " AND sender_id <> %s AND expires_at > %s",
        (conversation_id, read_seq, user_id, now_ms),
        read=lambda result: int(result.rows[0]["n"]) if result.rows else 0)


def expired_backlog(txn: Transaction, now_ms: int) -> tuple[int, int | None]:
    """How many messages have expired but are still stored, and the oldest one's expiry
    (index-only reads on `expires_at`)."""
    txn.execute("SELECT COUNT(*) AS n, MIN(expires_at) AS oldest FROM messages"
                " WHERE expires_at <= %s", (now_ms,))
    row = txn.fetchone() or {}
    oldest = row.get("oldest")
    return int(row.get("n") or 0), int(oldest) if oldest is not None else None


def lowest_stored_seq(txn: Transaction, conversation_id: str) -> int | None:
    txn.execute("SELECT MIN(seq) AS seq FROM messages WHERE conversation_id = %s",
                (conversation_id,))
    row = txn.fetchone()
    return int(row["seq"]) if row and row["seq"] is not None else None


# --- unsend ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnsendTarget:
    """What an unsend needs to judge the request: the caller's standing (None when not a
    member), the conversation's last seq, and the message at the seq if still stored."""

    consent: str
    joined_seq: int
    last_seq: int
    message_id: str | None
    sender_id: str | None
    client_msg_id: str | None
    expires_at: int | None


def unsend_target(txn: Transaction, conversation_id: str, user_id: str,
                  seq: int) -> UnsendTarget | None:
    """The caller's membership, the conversation's last seq and the message at `seq`, in one
    read; None when the caller is not a participant (or no such conversation)."""
    txn.execute(
        "SELECT p.consent, p.joined_seq, c.last_seq, m.id AS message_id, m.sender_id,"
        " m.client_msg_id, m.expires_at FROM participants p"
        " JOIN conversations c ON c.id = p.conversation_id"
        " LEFT JOIN messages m ON m.conversation_id = p.conversation_id AND m.seq = %s"
        " WHERE p.conversation_id = %s AND p.user_id = %s",
        (seq, conversation_id, user_id),
    )
    row = txn.fetchone()
    if row is None:
        return None
    expires_at = row["expires_at"]
    return UnsendTarget(row["consent"], int(row["joined_seq"]), int(row["last_seq"]),
                        row["message_id"], row["sender_id"], row["client_msg_id"],
                        int(expires_at) if expires_at is not None else None)


def delete_unsent(txn: Transaction, conversation_id: str, seq: int, *, sender_id: str,
                  now_ms: int) -> bool:
    """Physically delete the sender's unexpired message at `seq` (no tombstone). False when
    it was not there any more (a concurrent unsend or the expiry sweep took it first)."""
    txn.execute(
        "DELETE FROM messages WHERE conversation_id = %s AND seq = %s AND sender_id = %s"
        " AND expires_at > %s",
        (conversation_id, seq, sender_id, now_ms),
    )
    return txn.rowcount == 1


def end_idempotent_message(txn: Transaction, sender_id: str, client_msg_id: str,
                           message_id: str, *, now_ms: int) -> None:
    """Queue: the key stays (a retried send must not store the message again) but says its
    message ended now, so the retry is answered `duplicate` and `expired`. Its `keep_until`
    is left alone: the housekeeping keeps it for the whole retry window."""
    txn.later(
        "UPDATE idempotency_keys SET message_expires_at = %s WHERE sender_id = %s"
        " AND client_msg_id = %s AND message_id = %s AND message_expires_at > %s",
        (now_ms, sender_id, client_msg_id, message_id, now_ms))


def gone_up_to(txn: Transaction, conversation_id: str, *, last_seq: int) -> int:
    """The `up_to_seq` of an `expired` frame: every seq up to it is gone (below the lowest
    message still stored, or the last seq when none is)."""
    lowest = lowest_stored_seq(txn, conversation_id)
    return lowest - 1 if lowest is not None else last_seq
