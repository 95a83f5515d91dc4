"""What every real-time operation works with, and the caller of a WebSocket frame."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.adapters.push import Push
from chalicelib.clock import Clock
from chalicelib.errors import Unauthorized
from chalicelib.observability import set_user
from chalicelib.services.limits import Limiter
from chalicelib.storage import connections
from chalicelib.storage.database import Database, Transaction

# A connection's last_seen_at is refreshed at most this often by ordinary frames (ping always
# refreshes it); well inside API Gateway's 10-minute idle limit that housekeeping checks.
TOUCH_EVERY_MS = 60_000


@dataclass(frozen=True)
class Realtime:
    """The collaborators of real-time work: database, push adapter, clock, rate limiter."""

    db: Database
    push: Push
    clock: Clock
    limiter: Limiter


@dataclass(frozen=True)
class Caller:
    """The user and device behind a WebSocket connection."""

    connection_id: str
    user_id: str
    device_id: str


def caller_of(connection_id: str, rt: Realtime, *, force_touch: bool = False) -> Caller:
    """Who sent a frame, from the connection row stored at `$connect`; refreshes the row's
    activity when it is getting old. A connection with no row (revoked, swept) is refused."""
    now = rt.clock.now_ms()

    def load_txn(txn: Transaction) -> Caller | None:
        row = connections.get_connection(txn, connection_id)
        if row is None:
            return None
        if force_touch or now - row.last_seen_at >= TOUCH_EVERY_MS:
            connections.touch_connection(txn, connection_id, now)
        return Caller(connection_id, row.user_id, row.device_id)

    caller = rt.db.run_transaction("realtime.caller", load_txn)
    if caller is None:
        raise Unauthorized("this connection is not logged in; open a new one with a ticket")
    set_user(caller.user_id)
    return caller
