"""What every service works with (the context, passed last), and the caller of a WebSocket
frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chalicelib.adapters.push import Push
from chalicelib.adapters.queue import FanoutQueue
from chalicelib.clock import Clock
from chalicelib.crypto import Keys
from chalicelib.errors import ConfigError, Unauthorized
from chalicelib.observability import set_user
from chalicelib.services.fanout import ASYNC_ABOVE
from chalicelib.services.limits import Limiter, Verdict
from chalicelib.storage import connections
from chalicelib.storage.connections import CallerRow, NamedConversation
from chalicelib.storage.database import Database, Transaction
from chalicelib.storage.messages import IdempotencyKey

if TYPE_CHECKING:
    from chalicelib.adapters.sms import SmsSender
    from chalicelib.services.tokens import Tokens

# A connection's last_seen_at is refreshed at most this often by ordinary frames (ping always
# refreshes it); presence and the idle sweep judge a connection by it.
TOUCH_EVERY_MS = 20_000
# No sign of life for this long and a connection is silent: presence stops counting it
# (PRESENCE_SILENT_AFTER_S; a 60 s ping interval plus slack for jitter).
SILENT_AFTER_MS = 75_000


@dataclass(frozen=True)
class Context:
    """Every service's collaborators, in one object that services take as their last argument:
    database, push adapter, clock, rate limiter, the derived keys that hash phones and bodies,
    the fan-out queue, and for the routes that sign people in, the token issuer, the SMS sender
    and the countries codes may go to (a function that does not sign anyone in is built
    without)."""

    db: Database
    push: Push
    clock: Clock
    limiter: Limiter
    keys: Keys
    # How stale a connection's last_seen_at may get before a frame refreshes it: well inside
    # the idle timeout that the sweep judges it by (bootstrap derives it from the config).
    touch_every_ms: int = TOUCH_EVERY_MS
    silent_after_ms: int = SILENT_AFTER_MS
    # Groups bigger than this get no `presence` pushes (PRESENCE_PUSH_MAX_MEMBERS).
    presence_push_max_members: int = connections.PRESENCE_PUSH_MAX_MEMBERS
    tokens: Tokens | None = None
    sms: SmsSender | None = None
    # Fan-outs to more connections than this go through the queue, when there is one
    # (FANOUT_ASYNC_ABOVE, FANOUT_QUEUE_URL).
    fanout: FanoutQueue | None = None
    fanout_async_above: int = ASYNC_ABOVE
    allowed_countries: tuple[str, ...] = ()

    def require_tokens(self) -> Tokens:
        """The token issuer, which a function that signs people in or reads tickets needs."""
        if self.tokens is None:
            raise ConfigError("this function was built without tokens")
        return self.tokens

    def require_sms(self) -> SmsSender:
        if self.sms is None:
            raise ConfigError("this function was built without an SMS sender")
        return self.sms


@dataclass(frozen=True)
class Caller:
    """The user and device behind a WebSocket connection, with what the frame's one read
    learnt besides: how the caller stands in the conversation the frame names (None when it
    names none that exists), their earlier sends under the frame's `client_msg_id`s, and
    whether the connection's activity is due a refresh (done inside the frame's own write)."""

    connection_id: str
    user_id: str
    device_id: str
    conversation: NamedConversation | None = None
    account_since: int = 0  # the rate limits treat accounts younger than a day more strictly
    prior_sends: dict[str, IdempotencyKey] = field(default_factory=dict)
    touch_due: bool = False
    was_silent: bool = False  # presence had stopped counting this connection


def caller_of(connection_id: str, ctx: Context, *, sending_to: str | None = None,
              client_msg_ids: Sequence[str] = (), force_touch: bool = False) -> Caller:
    """Who sent a frame, from the connection row stored at `$connect` (one read; for a send,
    `sending_to` names the conversation, whose standing the same read brings). A connection
    with no row (revoked, swept), or whose device has been revoked since, is refused."""
    if sending_to is None:
        row = ctx.db.run_read("frames.caller", connections.load_caller, connection_id)
    else:
        row = ctx.db.run_read("frames.sender", connections.load_sender, connection_id,
                             sending_to, client_msg_ids)
    return caller_from(connection_id, row, ctx, force_touch=force_touch)


def caller_from(connection_id: str, row: CallerRow | None, ctx: Context, *,
                force_touch: bool = False) -> Caller:
    """The caller a read of the connection found (`caller_of`'s, or one an action made in its
    own transaction); `unauthorized` when it found none."""
    if row is None:
        raise Unauthorized("this connection is not logged in; open a new one with a ticket")
    set_user(row.user_id)
    return Caller(connection_id, row.user_id, row.device_id, row.conversation,
                  row.account_since, row.prior_sends,
                  touch_due=force_touch or row.silent
                  or ctx.clock.now_ms() - row.last_seen_at >= ctx.touch_every_ms,
                  was_silent=row.silent)


def count_frame_txn(txn: Transaction, connection_id: str, now_ms: int, ctx: Context, *,
                    touch: bool, cost: int = 1) -> Verdict:
    """Queue the frame's hit on its connection's budget and, when due, the connection's sign
    of life, to travel with the transaction's next statement; the caller enforces the
    verdict after it."""
    verdict = ctx.limiter.count(txn, [("frames_per_connection", connection_id)], now_ms,
                               cost=cost)
    if touch:
        connections.touch_connection(txn, connection_id, now_ms)
    return verdict


def count_frame(connection_id: str, ctx: Context, *, touch: bool = False) -> None:
    """One frame against the connection's budget, in a transaction of its own (two round
    trips: the counting with the touch, then the COMMIT). Raises `RateLimited` when over."""

    def count_txn(txn: Transaction) -> None:
        count_frame_txn(txn, connection_id, ctx.clock.now_ms(), ctx, touch=touch).enforce()

    ctx.db.run_transaction("frames.count", count_txn)
