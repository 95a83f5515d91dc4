"""Live WebSocket connections: connection id -> user and device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.storage.conversations import MEMBER_BEYOND, Cursors
from chalicelib.storage.database import Later, Packed, Transaction, placeholders
from chalicelib.storage.engines import Row
from chalicelib.storage.messages import IdempotencyKey, idempotency_keys_of


@dataclass(frozen=True)
class ConnectionRow:
    id: str
    user_id: str
    device_id: str
    connected_at: int
    last_seen_at: int
    # Marked by the presence sweep: no sign of life for PRESENCE_SILENT_AFTER_S, so presence
    # no longer counts it (the row stays until the idle sweep deletes it).
    silent: bool = False


CONNECTION_COLUMNS = "id, user_id, device_id, connected_at, last_seen_at, silent"


def _connection(row: dict[str, Any]) -> ConnectionRow:
    return ConnectionRow(**{**row, "silent": bool(row["silent"])})


def insert_connection(txn: Transaction, connection: ConnectionRow) -> None:
    txn.execute(
        "INSERT INTO connections (id, user_id, device_id, connected_at, last_seen_at)"
        " VALUES (%s, %s, %s, %s, %s)",
        (connection.id, connection.user_id, connection.device_id, connection.connected_at,
         connection.last_seen_at),
    )


def get_connection(txn: Transaction, connection_id: str) -> ConnectionRow | None:
    txn.execute(f"SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = %s",  # noqa: S608
                (connection_id,))
    row = txn.fetchone()
    return _connection(row) if row else None


def delete_connection(txn: Transaction, connection_id: str) -> bool:
    """Remove a connection's row; False if it was already gone (the DELETE decides, so of two
    concurrent removals exactly one sees True)."""
    txn.execute("DELETE FROM connections WHERE id = %s", (connection_id,))
    return txn.rowcount == 1


def delete_device_connections(txn: Transaction, device_id: str) -> list[str]:
    """Remove every connection of a device; return their ids so the sockets can be closed."""
    txn.execute("SELECT id FROM connections WHERE device_id = %s ORDER BY id", (device_id,))
    ids = [row["id"] for row in txn.fetchall()]
    if ids:
        txn.execute("DELETE FROM connections WHERE device_id = %s", (device_id,))
    return ids


def touch_connection(txn: Transaction, connection_id: str, now_ms: int) -> None:
    """Queue: note the connection's latest sign of life (sent with the next statement)."""
    txn.later("UPDATE connections SET last_seen_at = %s WHERE id = %s", (now_ms, connection_id))


def connection_ids_of_user(txn: Transaction, user_id: str) -> list[str]:
    txn.execute("SELECT id FROM connections WHERE user_id = %s ORDER BY id", (user_id,))
    return [row["id"] for row in txn.fetchall()]


# Presence is pushed to 1:1 partners and to members of groups of at most this many members
# (PRESENCE_PUSH_MAX_MEMBERS); bigger groups read it from the conversation list instead.
PRESENCE_PUSH_MAX_MEMBERS = 50


def connection_ids_of_contacts(txn: Transaction, user_id: str,
                               conversation_id: str | None = None, *,
                               max_group_members: int = PRESENCE_PUSH_MAX_MEMBERS) -> list[str]:
    """Connections of everyone who may be pushed the user's presence (not the user's own):
    those who share a conversation the user has accepted (and they have not declined), with
    no block between them either way, when it is a 1:1 or a group of at most
    `max_group_members` members. `conversation_id` narrows it to one conversation.

    What it reads grows with the user's own conversations, never with a big group's size: a
    group is judged by whether its (max_group_members + 1)-th participant row exists (at most
    that many entries of the primary key, read before anyone in it is joined), and nobody in
    a bigger group is read at all."""
    only = " AND mine.conversation_id = %s" if conversation_id is not None else ""
    big_group = MEMBER_BEYOND.format("mine.conversation_id")
    txn.execute(
        "SELECT DISTINCT k.id FROM participants mine"  # noqa: S608 - a fixed clause
        " JOIN conversations c ON c.id = mine.conversation_id"
        " JOIN participants theirs ON theirs.conversation_id = mine.conversation_id"
        "  AND theirs.user_id <> mine.user_id AND theirs.consent <> 'declined'"
        " JOIN connections k ON k.user_id = theirs.user_id"
        " WHERE mine.user_id = %s AND mine.consent = 'accepted'" + only +
        f" AND (c.kind = 'direct' OR {big_group} IS NULL)"  # noqa: S608 - a fixed clause
        " AND NOT EXISTS (SELECT 1 FROM blocks b"
        "  WHERE (b.blocker_id = mine.user_id AND b.blocked_user_id = theirs.user_id)"
        "  OR (b.blocker_id = theirs.user_id AND b.blocked_user_id = mine.user_id))"
        " ORDER BY k.id",
        (user_id, *([conversation_id] if conversation_id is not None else []),
         max_group_members),
    )
    return [row["id"] for row in txn.fetchall()]


def stale_connections(txn: Transaction, *, idle_before_ms: int, opened_before_ms: int,
                      limit: int) -> list[ConnectionRow]:
    """Connections API Gateway has certainly closed: idle too long, or open too long."""
    txn.execute(
        f"SELECT {CONNECTION_COLUMNS} FROM connections"  # noqa: S608 - fixed column list
        " WHERE last_seen_at < %s OR connected_at < %s ORDER BY last_seen_at LIMIT %s",
        (idle_before_ms, opened_before_ms, limit),
    )
    return [_connection(row) for row in txn.fetchall()]


# --- liveness: what the presence sweep reads and marks ------------------------------------


def live_connection_ids_of_user(txn: Transaction, user_id: str) -> list[str]:
    """The user's connections that presence counts (not marked silent)."""
    txn.execute("SELECT id FROM connections WHERE user_id = %s AND silent = 0 ORDER BY id",
                (user_id,))
    return [row["id"] for row in txn.fetchall()]


@dataclass(frozen=True)
class LivenessChange:
    """A user with a connection whose mark no longer fits its last activity."""

    user_id: str
    last_seen_at: int  # that connection's last sign of life


def liveness_changes(txn: Transaction, *, silent_before_ms: int,
                     limit: int) -> list[LivenessChange]:
    """Users with an unmarked connection quiet since before `silent_before_ms`, or a marked one
    that has shown life since: two ranges of the (silent, last_seen_at) index, so a sweep
    with nothing to do reads nothing."""
    txn.execute(
        "SELECT user_id, MAX(last_seen_at) AS last_seen_at FROM connections"
        " WHERE (silent = 0 AND last_seen_at < %s) OR (silent = 1 AND last_seen_at >= %s)"
        " GROUP BY user_id ORDER BY user_id LIMIT %s",
        (silent_before_ms, silent_before_ms, limit),
    )
    return [LivenessChange(row["user_id"], int(row["last_seen_at"])) for row in txn.fetchall()]


def mark_liveness(txn: Transaction, user_id: str, *, silent_before_ms: int) -> tuple[int, int]:
    """Mark the user's connections by their last activity: silent if quiet since before
    `silent_before_ms`, live otherwise. Returns (newly silent, newly live)."""
    txn.execute("UPDATE connections SET silent = 1"
                " WHERE user_id = %s AND silent = 0 AND last_seen_at < %s",
                (user_id, silent_before_ms))
    went_silent = txn.rowcount
    txn.execute("UPDATE connections SET silent = 0"
                " WHERE user_id = %s AND silent = 1 AND last_seen_at >= %s",
                (user_id, silent_before_ms))
    return went_silent, txn.rowcount


def last_activity_of_user(txn: Transaction, user_id: str) -> int | None:
    """The latest sign of life of any of the user's connections (None without any)."""
    txn.execute("SELECT MAX(last_seen_at) AS last_seen_at FROM connections WHERE user_id = %s",
                (user_id,))
    row = txn.fetchone()
    return int(row["last_seen_at"]) if row and row["last_seen_at"] is not None else None


@dataclass(frozen=True)
class SweepOutlook:
    """What decides when the presence sweep must look again."""

    oldest_live_activity: int | None  # the unmarked connection quiet for longest, if any
    any_silent: bool  # a marked connection may show life again at any time


def sweep_outlook(txn: Transaction) -> SweepOutlook:
    """Two index lookups: the oldest unmarked activity, and whether any connection is marked."""
    txn.execute(
        "SELECT (SELECT MIN(last_seen_at) FROM connections WHERE silent = 0) AS oldest_live,"
        " EXISTS (SELECT 1 FROM connections WHERE silent = 1) AS any_silent")
    row = txn.fetchone()
    oldest = row["oldest_live"]
    return SweepOutlook(int(oldest) if oldest is not None else None, bool(row["any_silent"]))


@dataclass(frozen=True)
class NamedConversation:
    """The conversation a frame names, as its caller stands in it."""

    ttl_seconds: int
    kind: str
    consent: str | None  # the caller's; None when they are not a member
    blocked: bool  # a direct chat whose other member blocked the caller


@dataclass(frozen=True)
class CallerRow:
    """A frame's caller, as its one read found it."""

    user_id: str
    device_id: str
    last_seen_at: int
    silent: bool  # presence had stopped counting the connection
    account_since: int = 0  # when the user activated their account (the rate limits' "age")
    conversation: NamedConversation | None = None  # the one a send names; None if none exists
    prior_sends: dict[str, IdempotencyKey] = field(default_factory=dict)  # under its ids


# Who is behind a connection: its user and device, if the device is still live (a revoked
# device's connection reads as none). Every frame pays for this read: its columns come packed.
_CALLER_COLUMNS = {"user_id": "k.user_id", "device_id": "k.device_id",
                   "last_seen_at": "k.last_seen_at", "silent": "k.silent"}
_LIVE_CONNECTION = (" FROM connections k"
                    " JOIN devices d ON d.id = k.device_id AND d.revoked_at IS NULL")
_CALLER = Packed(**_CALLER_COLUMNS, flags=["silent"])


def load_caller(txn: Transaction, connection_id: str) -> CallerRow | None:
    """The connection's user and device, if the device is still live."""
    txn.execute(f"SELECT {_CALLER.sql}{_LIVE_CONNECTION} WHERE k.id = %s",
                (connection_id,))
    packed = txn.fetchone()
    return None if packed is None else _caller_of(_CALLER.row(packed))


def _caller_of(row: Row) -> CallerRow:
    return CallerRow(row["user_id"], row["device_id"], int(row["last_seen_at"]), row["silent"])


_MEMBER = Packed(**_CALLER_COLUMNS, read_seq="p.read_seq", delivered_seq="p.delivered_seq",
                 last_seq="(SELECT c.last_seq FROM conversations c"
                          " WHERE c.id = p.conversation_id)", flags=["silent"])


def member_later(txn: Transaction, connection_id: str, conversation_id: str,
                 ) -> Later[tuple[CallerRow | None, Cursors | None]]:
    """Queue `load_caller` for an ack or a read, with the caller's cursors in the
    conversation and its last seq, which caps them (None unless a member who has not
    declined): one value, so it goes with the frame's rate-limit read as one statement.
    Nothing is locked: `conversations.move_cursors` moves them only forward."""
    return txn.later_value(
        f"SELECT {_MEMBER.sql}{_LIVE_CONNECTION}"
        " LEFT JOIN participants p ON p.conversation_id = %s AND p.user_id = k.user_id"
        "  AND p.consent <> 'declined'"
        " WHERE k.id = %s",
        (conversation_id, connection_id), read=_member)


def _member(packed: str | None) -> tuple[CallerRow | None, Cursors | None]:
    if packed is None:
        return None, None
    row = _MEMBER.unpack(packed)
    if row["read_seq"] is None:
        return _caller_of(row), None
    return _caller_of(row), Cursors(int(row["read_seq"]), int(row["delivered_seq"]),
                                    int(row["last_seq"]))


def _sender_columns(prior_sends: str) -> Packed:
    return Packed(
        **_CALLER_COLUMNS, account_since="COALESCE(u.activated_at, u.created_at)",
        ttl_seconds="c.ttl_seconds", kind="c.kind", consent="p.consent",
        blocked="EXISTS (SELECT 1 FROM participants o JOIN blocks b"
                "  ON b.blocker_id = o.user_id AND b.blocked_user_id = k.user_id"
                "  WHERE c.kind = 'direct' AND o.conversation_id = c.id"
                "  AND o.user_id <> k.user_id)",
        prior_sends=prior_sends, flags=["silent", "blocked"])


def load_sender(txn: Transaction, connection_id: str, conversation_id: str,
                client_msg_ids: Sequence[str]) -> CallerRow | None:
    """`load_caller` for a send, in the same one round trip: also the account's age, how the
    caller stands in the conversation the send names, and their earlier sends under its
    client_msg_ids (a retry is answered from this read, without a locking transaction). The
    row only counts those: a fresh send, the usual one, reads no key's nine columns; a retry
    reads its keys in a second round trip."""
    prior_count = ("(SELECT COUNT(*) FROM idempotency_keys ik"  # noqa: S608 - placeholders
                   " WHERE ik.sender_id = k.user_id"
                   f" AND ik.client_msg_id IN ({placeholders(client_msg_ids)}))"
                   if client_msg_ids else "0")
    columns = _sender_columns(prior_count)
    txn.execute(
        f"SELECT {columns.sql}{_LIVE_CONNECTION}"
        " JOIN users u ON u.id = k.user_id"
        " LEFT JOIN conversations c ON c.id = %s"
        " LEFT JOIN participants p ON p.conversation_id = c.id AND p.user_id = k.user_id"
        " WHERE k.id = %s",
        (*client_msg_ids, conversation_id, connection_id),
    )
    packed = txn.fetchone()
    if packed is None:
        return None
    row = columns.row(packed)
    named = None
    if row["ttl_seconds"] is not None:
        named = NamedConversation(int(row["ttl_seconds"]), row["kind"], row["consent"],
                                  row["blocked"])
    prior_sends = {}
    if row["prior_sends"]:
        prior_sends = idempotency_keys_of(txn, row["user_id"], list(client_msg_ids))
    return CallerRow(row["user_id"], row["device_id"], int(row["last_seen_at"]),
                     row["silent"], int(row["account_since"]), named, prior_sends)
