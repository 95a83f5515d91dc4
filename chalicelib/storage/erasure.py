"""Everything stored about one user, found (for the export) and physically deleted (account
deletion). Rows that belong to others and name the user keep the row and lose the name: a block
someone placed on them, a conversation they started. The statements go by indexes: the user's
id, their devices, their connections, their phone's HMAC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.storage.database import Transaction, placeholders

# `conversations.created_by` of a conversation whose starter deleted the account: the row
# stays with the others, without the id (the column is NOT NULL).
NOBODY = ""


@dataclass(frozen=True)
class Membership:
    """One participant row of the user's (declined ones too)."""

    conversation_id: str
    kind: str  # "direct" | "group"
    role: str
    consent: str


def memberships(txn: Transaction, user_id: str) -> list[Membership]:
    """Every conversation the user has a participant row in, by id."""
    txn.execute(
        "SELECT p.conversation_id, c.kind, p.role, p.consent FROM participants p"
        " JOIN conversations c ON c.id = p.conversation_id WHERE p.user_id = %s"
        " ORDER BY p.conversation_id",
        (user_id,),
    )
    return [Membership(**row) for row in txn.fetchall()]


def conversations_sent_to(txn: Transaction, user_id: str) -> list[str]:
    """The conversations the user has sent to and whose idempotency keys are still kept (a key
    is kept at least as long as its message), including ones they have since left."""
    txn.execute("SELECT DISTINCT conversation_id FROM idempotency_keys WHERE sender_id = %s"
                " ORDER BY conversation_id", (user_id,))
    return [row["conversation_id"] for row in txn.fetchall()]


def lock_conversations(txn: Transaction, conversation_ids: Sequence[str]) -> None:
    """Take the conversations' row locks, in id order, before touching their participants: a
    send takes the conversation row first too, so the two queue instead of deadlocking, and a
    send already under way commits before its message is looked for."""
    for conversation_id in sorted(conversation_ids):
        txn.execute(f"SELECT id FROM conversations WHERE id = %s{txn.engine.for_update()}",  # noqa: S608
                    (conversation_id,))


def delete_messages_of(txn: Transaction, conversation_id: str, sender_id: str) -> list[int]:
    """Delete the sender's messages in one conversation (expired or not); return their seqs,
    ascending, so the others can be told which went."""
    txn.execute("SELECT seq FROM messages WHERE conversation_id = %s AND sender_id = %s"
                " ORDER BY seq", (conversation_id, sender_id))
    seqs = [int(row["seq"]) for row in txn.fetchall()]
    if seqs:
        txn.execute("DELETE FROM messages WHERE conversation_id = %s AND sender_id = %s",
                    (conversation_id, sender_id))
    return seqs


def forget_direct_pair(txn: Transaction, conversation_id: str) -> None:
    """A direct conversation's `direct_key` holds both ids: the partner keeps the conversation
    without it (a new account on the phone gets a new conversation with them)."""
    txn.execute("UPDATE conversations SET direct_key = NULL WHERE id = %s AND kind = 'direct'",
                (conversation_id,))


def forget_starter(txn: Transaction, user_id: str) -> None:
    """The conversations the user started keep going without naming them."""
    txn.execute("UPDATE conversations SET created_by = %s WHERE created_by = %s",
                (NOBODY, user_id))


def device_ids(txn: Transaction, user_id: str) -> list[str]:
    txn.execute("SELECT id FROM devices WHERE user_id = %s ORDER BY id", (user_id,))
    return [row["id"] for row in txn.fetchall()]


def delete_connections(txn: Transaction, user_id: str) -> list[str]:
    """Delete every connection of the user; return their ids, for closing the sockets."""
    txn.execute("SELECT id FROM connections WHERE user_id = %s ORDER BY id", (user_id,))
    ids = [row["id"] for row in txn.fetchall()]
    if ids:
        txn.execute("DELETE FROM connections WHERE user_id = %s", (user_id,))
    return ids


def delete_devices(txn: Transaction, user_id: str, devices: Sequence[str]) -> None:
    """The devices and their refresh tokens (rotated ones too)."""
    if devices:
        txn.execute(f"DELETE FROM refresh_tokens WHERE device_id IN ({placeholders(devices)})",  # noqa: S608
                    list(devices))
    txn.execute("DELETE FROM devices WHERE user_id = %s", (user_id,))


def delete_sends(txn: Transaction, user_id: str) -> None:
    """The idempotency keys of the user's sends (a body's HMAC, ids, seqs)."""
    txn.execute("DELETE FROM idempotency_keys WHERE sender_id = %s", (user_id,))


def delete_blocks(txn: Transaction, user_id: str) -> None:
    """The blocks the user placed. Blocks others placed on them are keyed by their phone's
    HMAC and stay (they outlive the account, as blocks must), without the user's id."""
    txn.execute("DELETE FROM blocks WHERE blocker_id = %s", (user_id,))
    txn.execute("UPDATE blocks SET blocked_user_id = NULL WHERE blocked_user_id = %s",
                (user_id,))


def delete_codes(txn: Transaction, phone: str, phone_key: str) -> None:
    """One-time codes sent to the phone (by its HMAC and by the number), and the local
    stage's outbox copies of them."""
    txn.execute("DELETE FROM otp_challenges WHERE phone_key = %s OR phone = %s",
                (phone_key, phone))
    txn.execute("DELETE FROM sms_outbox WHERE phone = %s", (phone,))


def delete_rate_limits(txn: Transaction, policies: Sequence[str], keys: Sequence[str]) -> None:
    """Rate-limit windows whose bucket (`<policy>:<key>` or `<policy>:<key>:<more>`) is keyed
    by one of `keys` (the user's id, devices, connections). By the buckets' primary key: one
    exact match and one prefix range per policy and key, no scan."""
    conditions: list[str] = []
    params: list[Any] = []
    for policy in policies:
        for key in keys:
            conditions.append("bucket = %s OR bucket LIKE %s ESCAPE '!'")
            params += [f"{policy}:{key}", f"{policy}:{_like_escape(key)}:%"]
    for start in range(0, len(conditions), 200):
        txn.execute("DELETE FROM rate_limit_windows WHERE "  # noqa: S608 - placeholders only
                    + " OR ".join(conditions[start:start + 200]),
                    params[2 * start:2 * (start + 200)])


def delete_user(txn: Transaction, user_id: str) -> None:
    """The users row: phone, profile, settings, presence."""
    txn.execute("DELETE FROM users WHERE id = %s", (user_id,))


def _like_escape(value: str) -> str:
    """A LIKE pattern matching `value` literally ('!' escapes: the same in both engines)."""
    return value.replace("!", "!!").replace("%", "!%").replace("_", "!_")


# --- the export ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    id: str
    phone: str
    display_name: str | None
    message_requests: bool
    read_receipts: bool
    created_at: int
    activated_at: int | None
    last_seen_at: int | None


def account(txn: Transaction, user_id: str) -> Account | None:
    txn.execute("SELECT id, phone, display_name, message_requests, read_receipts, created_at,"
                " activated_at, last_seen_at FROM users WHERE id = %s", (user_id,))
    row = txn.fetchone()
    if row is None:
        return None
    return Account(**{**row, "message_requests": bool(row["message_requests"]),
                      "read_receipts": bool(row["read_receipts"])})


def devices(txn: Transaction, user_id: str) -> list[dict[str, Any]]:
    """Every device row of the user's, revoked ones too."""
    txn.execute("SELECT id, name, created_at, last_used_at, revoked_at FROM devices"
                " WHERE user_id = %s ORDER BY created_at, id", (user_id,))
    return [dict(row) for row in txn.fetchall()]


def blocks_placed(txn: Transaction, user_id: str) -> list[dict[str, Any]]:
    """The blocks the user placed, with the blocked phone's current user (null when that
    account was deleted: the block stays, keyed by the phone's HMAC)."""
    txn.execute("SELECT b.blocked_user_id AS user_id, u.phone, b.created_at AS blocked_at"
                " FROM blocks b LEFT JOIN users u ON u.id = b.blocked_user_id"
                " WHERE b.blocker_id = %s ORDER BY b.created_at, b.blocked_key", (user_id,))
    return [dict(row) for row in txn.fetchall()]


def own_messages(txn: Transaction, conversation_id: str, sender_id: str, *, now_ms: int,
                 limit: int) -> list[dict[str, Any]]:
    """The sender's newest unexpired messages in a conversation, at most `limit`, ascending."""
    txn.execute(
        "SELECT conversation_id, seq, client_msg_id, body, created_at, expires_at FROM messages"
        " WHERE conversation_id = %s AND sender_id = %s AND expires_at > %s"
        " ORDER BY seq DESC LIMIT %s",
        (conversation_id, sender_id, now_ms, limit),
    )
    return [dict(row) for row in reversed(txn.fetchall())]
