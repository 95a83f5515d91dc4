"""What every real-time operation works with, and the caller of a WebSocket frame."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.adapters.push import Push
from chalicelib.clock import Clock
from chalicelib.crypto import Keys
from chalicelib.errors import Unauthorized
from chalicelib.observability import set_user
from chalicelib.services.limits import Limiter
from chalicelib.storage import connections
from chalicelib.storage.connections import NamedConversation
from chalicelib.storage.database import Database
from chalicelib.storage.messages import IdempotencyKey

# A connection's last_seen_at is refreshed at most this often by ordinary frames (ping always
# refreshes it); well inside API Gateway's 10-minute idle limit that housekeeping checks.
TOUCH_EVERY_MS = 60_000


@dataclass(frozen=True)
class Realtime:
    """The collaborators of real-time work: database, push adapter, clock, rate limiter, and
    the derived keys that hash phones and bodies."""

    db: Database
    push: Push
    clock: Clock
    limiter: Limiter
    keys: Keys
    # How stale a connection's last_seen_at may get before a frame refreshes it: well inside
    # the idle timeout that the sweep judges it by (bootstrap derives it from the config).
    touch_every_ms: int = TOUCH_EVERY_MS


@dataclass(frozen=True)
class Caller:
    """The user and device behind a WebSocket connection, with what the frame's one read
    learnt besides: how the caller stands in the conversation the frame names (None when it
    names none that exists) and their earlier send under the frame's `client_msg_id`."""

    connection_id: str
    user_id: str
    device_id: str
    conversation: NamedConversation | None = None
    account_since: int = 0  # the rate limits treat accounts younger than a day more strictly
    prior_send: IdempotencyKey | None = None


def caller_of(connection_id: str, rt: Realtime, *, conversation_id: str | None = None,
              client_msg_id: str | None = None, force_touch: bool = False) -> Caller:
    """Who sent a frame, from the connection row stored at `$connect` (one read). The row's
    activity is refreshed when it is getting old, or always for a ping. A connection with no
    row (revoked, swept), or whose device has been revoked since, is refused."""
    now = rt.clock.now_ms()
    loaded = rt.db.run_read("realtime.caller", connections.load_caller, connection_id,
                            conversation_id, client_msg_id)
    if loaded is None:
        raise Unauthorized("this connection is not logged in; open a new one with a ticket")
    row = loaded.connection
    if force_touch or now - row.last_seen_at >= rt.touch_every_ms:
        rt.db.run_transaction("realtime.touch", connections.touch_connection, connection_id,
                              now)
    set_user(row.user_id)
    return Caller(connection_id, row.user_id, row.device_id, loaded.conversation,
                  loaded.account_since, loaded.prior_send)
