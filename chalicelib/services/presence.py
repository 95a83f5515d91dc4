"""Multi-device presence: a user is online while any of their devices holds a live connection.

`presence` frames go to the users who share a 1:1 or a small group (at most
PRESENCE_PUSH_MAX_MEMBERS members) with them, only when the user comes online or goes offline;
the user's row lock makes exactly one connect, disconnect or sweep see each change. Members of
bigger groups are not pushed: pushing them made n devices of one group reconnecting after a
blip cost about n^2 pushes (issue 24 measured 28 connects/s falling to 4/s in a group of 255
members with 4 devices each). They read presence from GET /conversations (members[].online,
`presence_pushed: false`), which clients refresh while they show such a group.

Dead connections (410 on a push, or past API Gateway's idle and age limits) are dropped the
same way as a clean disconnect, so none is ever counted.

A socket can also die silently (lid shut, Wi-Fi lost): no close reaches us, and API Gateway
only notices after its 10-minute idle limit. Clients ping every 60 s, so a connection with no
sign of life for `silent_after` (75 s: a ping interval plus slack for jitter) is *silent*: the
presence sweep marks it, and a user whose last counted connection is marked is announced
offline with its last activity as `last_seen_at`. A marked connection that shows life again is
unmarked by the next sweep and the user announced online again. The row stays: the idle sweep
deletes it as before. Freshness comes from the activity pings already record and the sweep's
schedule, never from more pings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.config import Config
from chalicelib.observability import logger, metrics
from chalicelib.services import delivery
from chalicelib.services.context import SILENT_AFTER_MS, Context
from chalicelib.storage import connections, conversations, users
from chalicelib.storage.connections import ConnectionRow
from chalicelib.storage.database import Transaction
from chalicelib.wire import presence_frame, receipt_frame

SWEEP_BATCH = 500
# The longest a `$connect` can run (its function's timeout, .chalice/config.json), during
# which API Gateway answers 410 to pushes to the connection being opened.
CONNECTING_MS = 10_000


@dataclass(frozen=True)
class Liveness:
    """How presence judges a connection that says nothing (PRESENCE_SILENT_AFTER_S and
    PRESENCE_SWEEP_EVERY_S): silent after `silent_after_ms` without a sign of life, and looked
    at again at most every `sweep_every_ms`, so offline is announced within their sum."""

    silent_after_ms: int = SILENT_AFTER_MS
    sweep_every_ms: int = 15_000


DEFAULT_LIVENESS = Liveness()
SCHEDULE_PERIOD_S = 60  # app.py's Rate(1 minute)
WATCH_FOR_S = SCHEDULE_PERIOD_S - DEFAULT_LIVENESS.sweep_every_ms / 1000


@dataclass
class PresenceSweep:
    """What presence sweeps did: how many ran, and the announcements they made."""

    sweeps: int = 0
    offline: int = 0
    online: int = 0

    def add(self, other: PresenceSweep) -> None:
        self.sweeps += other.sweeps
        self.offline += other.offline
        self.online += other.online


@dataclass(frozen=True)
class Transition:
    """A change of what others are told about a user."""

    user_id: str
    online: bool
    last_seen_at: int


def connection_opened_txn(txn: Transaction, row: ConnectionRow, *,
                          user_locked: bool = False) -> bool:
    """Store a new connection inside the caller's transaction (taking the user's lock unless
    the caller holds it already); True if it is the user's first live one (the user just
    came online)."""
    if not user_locked:
        users.lock_user(txn, row.user_id, row.connected_at)
    # Others were told "online" if any other connection is counted (silent ones are not).
    was_online = bool(connections.live_connection_ids_of_user(txn, row.user_id))
    connections.insert_connection(txn, row)
    return not was_online


def connection_closed_txn(txn: Transaction, connection_id: str, now_ms: int, *,
                          opened_before_ms: int | None = None) -> ConnectionRow | None:
    """Forget a connection; the row if it was its user's last counted one (they just went
    offline). A connection already marked silent was not counted: its user's going offline
    was announced by the sweep, with its last activity, and its closing now (the idle sweep,
    minutes later) is no sign of life. With `opened_before_ms`, a connection opened since is
    kept (see `close_connection`)."""
    row = connections.get_connection(txn, connection_id)
    if row is None or (opened_before_ms is not None and row.connected_at > opened_before_ms):
        return None
    users.lock_user(txn, row.user_id, row.last_seen_at if row.silent else now_ms)
    # Under the user's lock, the DELETE tells whether a concurrent close (a $disconnect racing
    # a 410, say) got here first; only the one that removed the row may announce.
    if not connections.delete_connection(txn, connection_id) or row.silent:
        return None
    return row if not connections.live_connection_ids_of_user(txn, row.user_id) else None


def announce(user_id: str, *, online: bool, last_seen_at: int | None, ctx: Context) -> None:
    """Tell everyone who may see the user's presence; drop whatever turns out gone."""
    frame = presence_frame(user_id, online=online, last_seen_at=last_seen_at)
    audience = ctx.db.run_read("presence.audience", connections.connection_ids_of_contacts,
                              user_id, max_group_members=ctx.presence_push_max_members)
    delivery.push_frames([(cid, frame) for cid in audience], ctx)


def presence_pushed(kind: str, member_count: int, max_group_members: int) -> bool:
    """Whether members of a conversation are pushed each other's `presence`: always in a 1:1,
    in a group while it has at most `max_group_members` members (as
    `connection_ids_of_contacts` judges it). Otherwise clients refresh the conversation list
    to keep its members' `online` true."""
    return kind == "direct" or member_count <= max_group_members


def reveal(user_id: str, conversation_id: str, ctx: Context) -> None:
    """The user just accepted a conversation: its members learn at once what they may now
    see, the user's presence (unless it is a group too big for presence pushes) and how far
    the user has got (`receipt`s for the cursors, never across a block, `read` only between
    people who both share reads)."""

    def reveal_txn(txn: Transaction) -> list[tuple[str, dict[str, object]]]:
        me = next((member for member in conversations.members_of(txn, [conversation_id])
                   if member.user_id == user_id), None)
        if me is None:
            return []
        presence = presence_frame(user_id, online=me.online, last_seen_at=me.last_seen_at)
        frames = [(cid, presence) for cid in connections.connection_ids_of_contacts(
            txn, user_id, conversation_id, max_group_members=ctx.presence_push_max_members)]
        listeners = conversations.listeners_later(txn, conversation_id, user_id,
                                                  either_way=True).value
        for kind, seq in (("delivered", me.delivered_seq), ("read", me.read_seq)):
            receipt = receipt_frame(conversation_id, user_id, kind, seq)
            frames += [(listener.connection_id, receipt) for listener in listeners
                       if seq > 0 and listener.user_id != user_id and not listener.blocked
                       and (kind == "delivered" or (me.read_receipts
                                                     and listener.read_receipts))]
        return frames

    delivery.push_frames(ctx.db.run_read("presence.reveal", reveal_txn), ctx)


def close_connection(connection_id: str, ctx: Context, *, gone_on_push: bool = False) -> None:
    """A socket is gone ($disconnect, 410, sweep): forget it, announce offline if last.

    A 410 on a push is not proof for a connection opened less than CONNECTING_MS ago: its row
    is stored inside `$connect`, and API Gateway answers 410 to pushes until `$connect` has
    returned. Dropping it then would leave an open socket the server no longer knows, which
    would get nothing (two members of a group connecting at once did that). It is kept; if it
    really died, its `$disconnect` or the idle sweep removes it, and what the push carried
    reaches it by the `sync` every client makes once connected."""
    now = ctx.clock.now_ms()
    opened_before = now - CONNECTING_MS if gone_on_push else None
    last = ctx.db.run_transaction("presence.close", connection_closed_txn, connection_id, now,
                                  opened_before_ms=opened_before)
    if last is not None:
        announce(last.user_id, online=False, last_seen_at=now, ctx=ctx)


def sweep_stale_connections(*, idle_timeout_s: int, max_connection_s: int,
                            ctx: Context) -> int:
    """Remove connections API Gateway has closed without telling us (idle past its limit, or
    older than its maximum), closing them to be sure. Returns how many went."""
    now = ctx.clock.now_ms()
    stale = ctx.db.run_read(
        "presence.stale", connections.stale_connections,
        idle_before_ms=now - idle_timeout_s * 1000,
        opened_before_ms=now - max_connection_s * 1000, limit=SWEEP_BATCH,
    )
    for row in stale:
        ctx.push.disconnect(row.id)
        close_connection(row.id, ctx)
    return len(stale)


def sweep_presence(liveness: Liveness, ctx: Context) -> PresenceSweep:
    """Mark connections that went silent or showed life again since the last sweep, and
    announce each user whose presence changed by it (once: under the user's lock)."""
    silent_before = ctx.clock.now_ms() - liveness.silent_after_ms
    changes = ctx.db.run_read("presence.liveness_changes", connections.liveness_changes,
                             silent_before_ms=silent_before, limit=SWEEP_BATCH)
    swept = PresenceSweep(sweeps=1)
    for change in changes:
        transition = settle_user(change, silent_before_ms=silent_before, ctx=ctx)
        if transition is not None and transition.online:
            swept.online += 1
        elif transition is not None:
            swept.offline += 1
    return swept


def settle_user(change: connections.LivenessChange, *, silent_before_ms: int,
                ctx: Context) -> Transition | None:
    """Bring what others are told about one user in line with their connections' activity,
    and tell them if it changed. The sweep calls it; so can the frame path, the moment a
    connection marked silent shows life (rather than at the next sweep)."""
    transition = ctx.db.run_transaction("presence.settle", settle_user_txn, change,
                                       silent_before_ms=silent_before_ms)
    if transition is not None:
        announce(transition.user_id, online=transition.online,
                 last_seen_at=transition.last_seen_at, ctx=ctx)
    return transition


def settle_user_txn(txn: Transaction, change: connections.LivenessChange, *,
                    silent_before_ms: int) -> Transition | None:
    """Under the user's lock: re-mark their connections by last activity; the transition if
    the user went from counted-online to not, or back. `last_seen_at` is the latest activity
    of any of their connections: the truth, not the sweep's time."""
    users.lock_user(txn, change.user_id, change.last_seen_at)
    counted = len(connections.live_connection_ids_of_user(txn, change.user_id))
    went_silent, came_alive = connections.mark_liveness(txn, change.user_id,
                                                        silent_before_ms=silent_before_ms)
    is_online = counted - went_silent + came_alive > 0
    if is_online == (counted > 0):
        return None
    last_seen = connections.last_activity_of_user(txn, change.user_id)
    if last_seen is None:
        return None
    users.note_last_seen(txn, change.user_id, last_seen)
    return Transition(change.user_id, online=is_online, last_seen_at=last_seen)


def revive(user_id: str, ctx: Context) -> None:
    """A frame just came on a connection marked silent (and refreshed its activity): settle
    the user now, so they show online again at once."""
    now = ctx.clock.now_ms()
    settle_user(connections.LivenessChange(user_id, now),
                silent_before_ms=now - ctx.silent_after_ms, ctx=ctx)


def run_watch(ctx: Context, *, liveness: Liveness = DEFAULT_LIVENESS,
              watch_for_s: float = WATCH_FOR_S,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """The presence watch's scheduled run (every minute, a 128 MB function of its own): a
    sweep now, then sweeps whenever one may find something until `watch_for_s` after the
    start, one interval before the next run sweeps again. A silent drop is so announced
    within PRESENCE_SILENT_AFTER_S + PRESENCE_SWEEP_EVERY_S; with no one connected, the run
    ends at once. Reports the figures as metrics and one log line, and returns them."""
    started = ctx.clock.now_ms()
    swept = sweep_presence(liveness, ctx)
    if watch_for_s > 0:
        swept.add(watch_presence(liveness, ctx, last_sweep_ms=started,
                                 until_ms=started + int(watch_for_s * 1000), sleep=sleep))
    figures = {"presence_sweeps": swept.sweeps, "presence_offline": swept.offline,
               "presence_online": swept.online}
    metrics.add_metric(name="SilentUsersAnnouncedOffline", unit=MetricUnit.Count,
                       value=swept.offline)
    logger.info("presence watch", extra=figures)
    return figures


def run_scheduled_watch(config: Config, ctx: Context) -> dict[str, Any]:
    """`run_watch` with the configured liveness, watching until one sweep interval before the
    next run (the local stack fires it every EXPIRY_INTERVAL_S, a deployed stage every
    minute)."""
    period_s = min(config.expiry_interval_s, SCHEDULE_PERIOD_S)
    liveness = Liveness(silent_after_ms=config.presence_silent_after_s * 1000,
                        sweep_every_ms=config.presence_sweep_every_s * 1000)
    return run_watch(ctx, liveness=liveness,
                     watch_for_s=period_s - config.presence_sweep_every_s)


def watch_presence(liveness: Liveness, ctx: Context, *, last_sweep_ms: int, until_ms: int,
                   sleep: Callable[[float], None] = time.sleep) -> PresenceSweep:
    """After a sweep at `last_sweep_ms`, sweep again whenever a counted connection may have
    gone silent (its last activity plus `silent_after`) or a silent one may have come back,
    never more often than `sweep_every`, until `until_ms`. With nothing to wait for (no one
    connected) it returns at once, so an idle system's scheduled run ends at once."""
    watched = PresenceSweep()
    max_sweeps = max(0, until_ms - last_sweep_ms) // liveness.sweep_every_ms
    while watched.sweeps < max_sweeps:
        outlook = ctx.db.run_read("presence.outlook", connections.sweep_outlook)
        due = next_sweep_at(outlook, liveness, last_sweep_ms=last_sweep_ms)
        if due is None or due > until_ms:
            break
        wait_ms = due - ctx.clock.now_ms()
        if wait_ms > 0:
            sleep(wait_ms / 1000)
        watched.add(sweep_presence(liveness, ctx))
        last_sweep_ms = ctx.clock.now_ms()
    return watched


def next_sweep_at(outlook: connections.SweepOutlook, liveness: Liveness, *,
                  last_sweep_ms: int) -> int | None:
    """When the next sweep could find something: at the earliest moment a counted connection
    turns silent, or one interval on while a silent one might come back; None if neither."""
    soonest_allowed = last_sweep_ms + liveness.sweep_every_ms
    if outlook.any_silent:
        return soonest_allowed
    if outlook.oldest_live_activity is None:
        return None
    # Silent means quiet for longer than silent_after: the first millisecond after it.
    turns_silent_at = outlook.oldest_live_activity + liveness.silent_after_ms + 1
    return max(turns_silent_at, soonest_allowed)
