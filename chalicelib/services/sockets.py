"""The WebSocket connection lifecycle: admit with a single-use ticket, forget on disconnect."""

from __future__ import annotations

from chalicelib.clock import Clock
from chalicelib.errors import Forbidden, Unauthorized
from chalicelib.observability import set_user
from chalicelib.services.auth import Principal
from chalicelib.services.tokens import Tokens
from chalicelib.storage import connections, sessions, users
from chalicelib.storage.connections import ConnectionRow
from chalicelib.storage.database import Database, Transaction


def open_connection(ticket: object, connection_id: str, *, db: Database, tokens: Tokens,
                    clock: Clock) -> Principal:
    """Admit a socket presenting `?ticket=`: signature, audience and expiry are checked, the
    ticket is used up, the device must still be live; only then is the connection stored.
    Any failure raises and stores nothing (the transaction rolls the ticket's use back)."""
    if not isinstance(ticket, str) or not ticket:
        raise Unauthorized("a ticket is required: open the socket as url?ticket=...")
    claims = tokens.read_ticket(ticket)
    now = clock.now_ms()

    def admit_txn(txn: Transaction) -> None:
        if not sessions.consume_ticket(txn, claims.jti, claims.expires_at_ms):
            raise Unauthorized("this ticket was already used")
        device = users.get_device(txn, claims.device_id)
        if device is None or device.revoked_at is not None or device.user_id != claims.user_id:
            raise Forbidden("this device has been logged out")
        connections.insert_connection(txn, ConnectionRow(
            id=connection_id, user_id=claims.user_id, device_id=claims.device_id,
            connected_at=now, last_seen_at=now,
        ))

    db.run_transaction("sockets.open", admit_txn)
    set_user(claims.user_id)
    return Principal(claims.user_id, claims.device_id)


def close_connection(connection_id: str, *, db: Database) -> None:
    """Forget a closed socket (harmless if its row is already gone)."""
    db.run_transaction("sockets.close", connections.delete_connection, connection_id)
