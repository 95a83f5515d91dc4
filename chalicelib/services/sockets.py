"""The WebSocket connection lifecycle: admit with a single-use ticket, forget on disconnect."""

from __future__ import annotations

from chalicelib.errors import Forbidden, Unauthorized
from chalicelib.identity import Principal
from chalicelib.observability import set_user
from chalicelib.services import presence
from chalicelib.services.context import Context
from chalicelib.storage import sessions, users
from chalicelib.storage.connections import ConnectionRow
from chalicelib.storage.database import Transaction


def open_connection(ticket: object, connection_id: str, ctx: Context) -> Principal:
    """Admit a socket presenting `?ticket=`: signature, audience and expiry are checked, the
    ticket is used up, the device must still be live; only then is the connection stored.
    Any failure raises and stores nothing (the transaction rolls the ticket's use back)."""
    if not isinstance(ticket, str) or not ticket:
        raise Unauthorized("a ticket is required: open the socket as url?ticket=...")
    claims = ctx.require_tokens().read_ticket(ticket)
    now = ctx.clock.now_ms()

    def admit_txn(txn: Transaction) -> bool:
        ctx.limiter.check_txn(txn, [("connect_per_user", claims.user_id)], now)
        if not sessions.consume_ticket(txn, claims.jti, claims.expires_at_ms):
            raise Unauthorized("this ticket was already used")
        # The user's lock before the device is read: a revocation holds it while it revokes
        # and drops the device's connections, so this either sees the device revoked or
        # stores a connection the revocation will then drop; never a live one for a dead device.
        users.lock_user(txn, claims.user_id, now)
        device = users.get_device(txn, claims.device_id)
        if device is None or device.revoked_at is not None or device.user_id != claims.user_id:
            raise Forbidden("this device has been logged out")
        return presence.connection_opened_txn(txn, ConnectionRow(
            id=connection_id, user_id=claims.user_id, device_id=claims.device_id,
            connected_at=now, last_seen_at=now,
        ), user_locked=True)

    came_online = ctx.db.run_transaction("sockets.open", admit_txn)
    set_user(claims.user_id)
    if came_online:
        # Others learn now; this socket is not open until $connect returns, and pushing to it
        # from here would fail.
        presence.announce(claims.user_id, online=True, last_seen_at=now, ctx=ctx)
    return Principal(claims.user_id, claims.device_id)


def close_connection(connection_id: str, ctx: Context) -> None:
    """Forget a closed socket (harmless if its row is already gone)."""
    presence.close_connection(connection_id, ctx)
