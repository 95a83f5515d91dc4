"""The scheduled cleanup: the expiry engine, its announcements, and the housekeeping.

Every read already filters `expires_at > now`, so a message is unreadable from the millisecond
it expires; this is what makes it *gone*: deleted in short batches by the `expires_at` index,
then announced to the participants' live connections (`expired`, and `unread` where a count
changed). `reserved_concurrency: 1` keeps two runs apart; a second run at once would only find
less to do.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.config import Config
from chalicelib.errors import ConfigError
from chalicelib.observability import logger, metrics
from chalicelib.services.context import Context
from chalicelib.services.delivery import push_frames
from chalicelib.services.presence import sweep_stale_connections
from chalicelib.storage import conversations, housekeeping, messages
from chalicelib.storage.database import Transaction
from chalicelib.wire import expired_frame, unread_frame

DEFAULT_BATCH_SIZE = 2000
DEFAULT_TIME_BUDGET_S = 40.0  # well inside the scheduled function's 60 s timeout
# After each batch the engine rests this many times as long as the batch took, leaving the
# database to live traffic in between (measured in bench/expiry.py: it halves the purge's
# effect on concurrent sends' p99 and still deletes well over 20,000 rows a second).
DEFAULT_REST_RATIO = 1.0
# Housekeeping deletes in batches of this many rows, each its own transaction, with the same
# rests, until a batch comes back short or its budget is spent: every message leaves an
# idempotency key and, with a body of 20+ characters, a rate-limit window of its own, so one
# batch a minute (5,000 rows, as it was) fell behind any rate above 83 messages a second.
HOUSEKEEPING_BATCH = 1000
HOUSEKEEPING_TIME_BUDGET_S = 10.0  # after the purge's 40 s: the run's timeout is 60
TICKET_GRACE_MS = 60_000  # a used ticket's jti outlives the ticket's own expiry plus leeway
RANGES_PER_FRAME = 2000  # keeps an `expired` frame far below a push's 128 KB


@dataclass
class PurgeReport:
    deleted: int = 0
    batches: int = 0
    finished: bool = False  # False when the time budget ran out with expired rows left
    backlog: int = 0  # expired rows still stored after this run
    lag_ms: int = 0  # now - the oldest expiry still stored (0 when none)
    # per conversation, the (seq, sender) of each message deleted
    deleted_by_conversation: dict[str, list[tuple[int, str]]] = field(
        default_factory=lambda: defaultdict(list))


def purge_expired(
    ctx: Context,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
    rest_ratio: float = DEFAULT_REST_RATIO,
) -> PurgeReport:
    """Delete messages whose `expires_at` has passed, batch by batch, until none is left or
    the budget is spent. Each batch is its own short transaction (rows locked by primary key
    only), and the engine rests between batches, so live sends never wait long behind it."""
    report = PurgeReport()
    deadline = time.monotonic() + time_budget_s
    while time.monotonic() < deadline:
        started = time.monotonic()
        batch = ctx.db.run_transaction(
            "expiry.delete_batch", messages.delete_expired_batch,
            now_ms=ctx.clock.now_ms(), limit=batch_size,
        )
        if batch:
            report.batches += 1
            report.deleted += len(batch)
            for gone in batch:
                report.deleted_by_conversation[gone.conversation_id].append(
                    (gone.seq, gone.sender_id))
        if len(batch) < batch_size:
            report.finished = True
            break
        rest_after(started, rest_ratio)
    now = ctx.clock.now_ms()
    report.backlog, oldest = ctx.db.run_read("expiry.backlog", messages.expired_backlog, now)
    report.lag_ms = max(0, now - oldest) if oldest is not None else 0
    return report


def rest_after(started: float, rest_ratio: float) -> None:
    """Leave the database to live traffic for `rest_ratio` times as long as the batch begun at
    `started` (time.monotonic) took: the purge's and the housekeeping's pace."""
    time.sleep((time.monotonic() - started) * rest_ratio)


def announce(report: PurgeReport, ctx: Context) -> int:
    """Tell live participants what went: `expired` with the exact ranges and `up_to_seq`, and
    `unread` to members whose count may have changed. Returns frames pushed."""
    pushed = 0
    now = ctx.clock.now_ms()
    for conversation_id, deleted in report.deleted_by_conversation.items():
        frames = ctx.db.run_read("expiry.frames", deletion_frames_txn, conversation_id,
                                sorted(deleted), now)
        pushed += len(frames)
        push_frames(frames, ctx)
    return pushed


def deletion_frames_txn(txn: Transaction, conversation_id: str,
                        deleted: list[tuple[int, str]], now: int, *,
                        reason: str = "expired") -> list[tuple[str, dict[str, Any]]]:
    """The frames that tell a conversation's live members which of its messages, as sorted
    (seq, sender) pairs, were deleted: `expired` with the exact ranges and `up_to_seq` (to
    members who joined before the newest of them), and `unread` to each member whose count
    included one. Expiry, unsent and deleted accounts all tell it this way."""
    conversation = conversations.get_conversation(txn, conversation_id)
    if conversation is None or not deleted:
        return []
    up_to_seq = messages.gone_up_to(txn, conversation_id, last_seq=conversation.last_seq)
    ranges = to_ranges([seq for seq, _ in deleted])
    members = conversations.list_participants(txn, conversation_id)
    joined_before = {m.user_id for m in members if m.joined_seq < deleted[-1][0]}
    audience = [listener for listener in conversations.connections_of_conversation(
        txn, conversation_id) if listener.user_id in joined_before]
    frames = []
    for start in range(0, len(ranges), RANGES_PER_FRAME):
        frame = expired_frame(conversation_id, ranges[start:start + RANGES_PER_FRAME],
                              up_to_seq=up_to_seq, reason=reason)
        frames += [(listener.connection_id, frame) for listener in audience]
    for member in members:
        mine = [listener.connection_id for listener in audience
                if listener.user_id == member.user_id]
        counted = any(seq > member.read_seq and sender != member.user_id
                      for seq, sender in deleted)  # an unread message of theirs went
        if mine and counted:
            count = messages.unread_count(txn, conversation_id, member.user_id,
                                          read_seq=member.read_seq, now_ms=now)
            frames += [(cid, unread_frame(conversation_id, count)) for cid in mine]
    return frames


def to_ranges(seqs: list[int]) -> list[list[int]]:
    """Sorted seqs as inclusive [from, to] runs: [1, 2, 3, 7] -> [[1, 3], [7, 7]]."""
    ranges: list[list[int]] = []
    for seq in seqs:
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return ranges


def clear_ended_rows(ctx: Context, *, batch_size: int = HOUSEKEEPING_BATCH,
                     time_budget_s: float = HOUSEKEEPING_TIME_BUDGET_S,
                     rest_ratio: float = DEFAULT_REST_RATIO) -> dict[str, int]:
    """Housekeeping: used or expired codes, used tickets, refresh tokens, idempotency keys past
    their window, old rate-limit windows. Each table batch by batch until a batch comes back
    short or the budget is spent (then the next run goes on). Rows deleted, per table."""
    deadline = time.monotonic() + time_budget_s
    cleared = {}
    for spec in housekeeping.EXPIRING:
        cleared[spec.table] = 0
        while True:
            started = time.monotonic()
            now = ctx.clock.now_ms()
            before = now - TICKET_GRACE_MS if spec.table == "consumed_tickets" else now
            deleted = ctx.db.run_transaction(
                "expiry.housekeeping", housekeeping.delete_ended, spec, before_ms=before,
                limit=batch_size)
            cleared[spec.table] += deleted
            if deleted < batch_size or time.monotonic() >= deadline:
                break
            rest_after(started, rest_ratio)
    return cleared


def run_cleanup(ctx: Context, *, idle_timeout_s: int, max_connection_s: int,
                announce_deletions: bool = True) -> dict[str, Any]:
    """One scheduled run: purge, announce, sweep dead connections, housekeeping. Reports the
    figures as metrics and one log line, and returns them. (Presence is watched by a function
    of its own: `presence.run_watch`.)"""
    report = purge_expired(ctx)
    report_expiry_lag(report)
    frames = announce(report, ctx) if announce_deletions else 0
    stale = sweep_stale_connections(idle_timeout_s=idle_timeout_s,
                                    max_connection_s=max_connection_s, ctx=ctx)
    cleared = clear_ended_rows(ctx)
    figures = {"deleted": report.deleted, "batches": report.batches,
               "finished": report.finished, "backlog": report.backlog,
               "lag_ms": report.lag_ms, "expired_frames": frames,
               "stale_connections": stale, "housekeeping": cleared}
    for name, value, unit in (
        ("ExpiredMessagesDeleted", report.deleted, MetricUnit.Count),
        ("ExpiryBatches", report.batches, MetricUnit.Count),
        ("ExpiryBacklog", report.backlog, MetricUnit.Count),
        ("StaleConnectionsRemoved", stale, MetricUnit.Count),
    ):
        metrics.add_metric(name=name, unit=unit, value=value)
    logger.info("scheduled cleanup", extra=figures)
    return figures


def report_expiry_lag(report: PurgeReport) -> float:
    """Emit ExpiryLagSeconds, what the expiry alarm watches (infra/operate.yaml): how long the
    oldest expired message still stored has been past its expiry, read after this run's
    deletions (0 when none). Emitted before the announcements, so a failing push cannot
    silence it; a run that fails before it emits nothing, which the alarm counts as breaching."""
    lag_s = report.lag_ms / 1000
    metrics.add_metric(name="ExpiryLagSeconds", unit=MetricUnit.Seconds, value=lag_s)
    return lag_s


def run_scheduled(config: Config, ctx: Context) -> dict[str, Any]:
    """The scheduled cleanup's run, with the configured limits."""
    return run_cleanup(ctx, idle_timeout_s=config.ws_idle_timeout_s,
                       max_connection_s=config.ws_max_connection_s)


def main() -> int:
    """`make expire`: one run by hand, figures printed. Announcements need the push endpoint
    (WS_MANAGEMENT_ENDPOINT); without it the deletions still happen, unannounced."""
    from chalicelib import bootstrap

    config = bootstrap.get_config()
    ctx = bootstrap.get_context()
    try:
        figures = run_cleanup(ctx, idle_timeout_s=config.ws_idle_timeout_s,
                              max_connection_s=config.ws_max_connection_s,
                              announce_deletions=bool(config.ws_management_endpoint))
    except ConfigError as error:
        print(f"cannot run: {error}", file=sys.stderr)
        return 2
    for key, value in figures.items():
        print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
