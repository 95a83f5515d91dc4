"""Live WebSocket connections: connection id -> user and device."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Transaction


@dataclass(frozen=True)
class ConnectionRow:
    id: str
    user_id: str
    device_id: str
    connected_at: int
    last_seen_at: int


def insert_connection(txn: Transaction, connection: ConnectionRow) -> None:
    txn.execute(
        "INSERT INTO connections (id, user_id, device_id, connected_at, last_seen_at)"
        " VALUES (%s, %s, %s, %s, %s)",
        (connection.id, connection.user_id, connection.device_id, connection.connected_at,
         connection.last_seen_at),
    )


def get_connection(txn: Transaction, connection_id: str) -> ConnectionRow | None:
    txn.execute(
        "SELECT id, user_id, device_id, connected_at, last_seen_at FROM connections"
        " WHERE id = %s",
        (connection_id,),
    )
    row = txn.fetchone()
    return ConnectionRow(**row) if row else None


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
    txn.execute("UPDATE connections SET last_seen_at = %s WHERE id = %s", (now_ms, connection_id))


def connection_ids_of_user(txn: Transaction, user_id: str) -> list[str]:
    txn.execute("SELECT id FROM connections WHERE user_id = %s ORDER BY id", (user_id,))
    return [row["id"] for row in txn.fetchall()]


def connection_ids_of_contacts(txn: Transaction, user_id: str) -> list[str]:
    """Connections of everyone who shares a conversation with the user (not the user's own):
    who may see the user's presence."""
    txn.execute(
        "SELECT DISTINCT k.id FROM participants mine"
        " JOIN participants theirs ON theirs.conversation_id = mine.conversation_id"
        "  AND theirs.user_id <> mine.user_id"
        " JOIN connections k ON k.user_id = theirs.user_id"
        " WHERE mine.user_id = %s ORDER BY k.id",
        (user_id,),
    )
    return [row["id"] for row in txn.fetchall()]


def stale_connections(txn: Transaction, *, idle_before_ms: int, opened_before_ms: int,
                      limit: int) -> list[ConnectionRow]:
    """Connections API Gateway has certainly closed: idle too long, or open too long."""
    txn.execute(
        "SELECT id, user_id, device_id, connected_at, last_seen_at FROM connections"
        " WHERE last_seen_at < %s OR connected_at < %s ORDER BY last_seen_at LIMIT %s",
        (idle_before_ms, opened_before_ms, limit),
    )
    return [ConnectionRow(**row) for row in txn.fetchall()]


@dataclass(frozen=True)
class CallerRow:
    connection: ConnectionRow
    account_since: int  # when the user activated their account (the rate limits' "age")
    ttl_seconds: int | None  # of the conversation the frame names; None if there is none


def load_caller(txn: Transaction, connection_id: str,
                conversation_id: str | None) -> CallerRow | None:
    """A connection's row, its user's account age and, in the same round trip, the TTL of
    the conversation a frame names (a send needs both)."""
    txn.execute(
        "SELECT k.id, k.user_id, k.device_id, k.connected_at, k.last_seen_at,"
        " COALESCE(u.activated_at, u.created_at) AS account_since, c.ttl_seconds"
        " FROM connections k JOIN users u ON u.id = k.user_id"
        " LEFT JOIN conversations c ON c.id = %s WHERE k.id = %s",
        (conversation_id, connection_id),
    )
    row = txn.fetchone()
    if row is None:
        return None
    ttl = row.pop("ttl_seconds")
    account_since = int(row.pop("account_since"))
    return CallerRow(ConnectionRow(**row), account_since,
                     int(ttl) if ttl is not None else None)
