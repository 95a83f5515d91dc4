"""Pushing: frames to connections, concurrently, and what to do with the ones that are gone.

Each push is a network round trip in AWS, so a fan-out's pushes go out concurrently instead
of one after another: a few requests are sent before any answer is read, from the handler's
own thread (a hand-off to a pool of threads cost about a tenth of a message's CPU). A
connection API Gateway calls gone is forgotten the way a clean disconnect is (presence
announces offline if it was the user's last), so no dead connection is ever counted.
Fan-outs to more connections than `ctx.fanout_async_above` go through the fan-out queue
(services/fanout.py) when the function has one, and `work_fanout` is the queue's worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.adapters.push import InFlight, Push
from chalicelib.observability import logger, metrics
from chalicelib.services import fanout, presence
from chalicelib.storage import conversations
from chalicelib.wire import Frame

if TYPE_CHECKING:
    from chalicelib.services.context import Context

PUSH_CONCURRENCY = 8  # requests in flight at once (the push adapter keeps 8 connections alive)


@dataclass
class Delivery:
    """What became of a round of pushes: connections gone (410) and connections whose push
    failed otherwise (after the adapter's retries)."""

    gone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class FanoutIncomplete(Exception):
    """Some pushes of a queued batch failed: the queue delivers the batch again."""


def push_frames(frames: list[tuple[str, Frame]], ctx: Context, *,
                answering: str | None = None) -> None:
    """The one way services push: deliver every frame, then drop the connections that turned
    out to be gone. `answering` is the caller's own connection: on a big fan-out it is still
    answered here, first, while the others are queued."""
    planned = None
    if ctx.fanout is not None:
        planned = fanout.plan(frames, answering=answering, async_above=ctx.fanout_async_above)
    if planned is None or not planned.queued:
        drop_connections(deliver(ctx.push, frames).gone, ctx)
        return
    gone = deliver(ctx.push, planned.now).gone
    gone += queue_or_push(planned.queued,
                          lambda: [(cid, f) for cid, f in frames if cid != answering], ctx)
    drop_connections(gone, ctx)


def queue_or_push(bodies: list[str], pushes_instead: Callable[[], list[tuple[str, Frame]]],
                  ctx: Context) -> list[str]:
    """Queue a fan-out's bodies; if the queue refuses, push `pushes_instead()` from here
    (slower for the caller, but nothing accepted is lost). Returns the connections found
    gone."""
    assert ctx.fanout is not None
    try:
        ctx.fanout.send(bodies)
    except Exception:  # noqa: BLE001 - any queue failure: push it all from here instead
        logger.warning("fan-out queue refused; pushing in this invocation", exc_info=True)
        return deliver(ctx.push, pushes_instead()).gone
    metrics.add_metric(name="FanoutEnqueued", unit=MetricUnit.Count, value=len(bodies))
    return []


def drop_connections(connection_ids: Iterable[str], ctx: Context) -> None:
    for connection_id in connection_ids:
        logger.info("dropping a gone connection", extra={"connection_id": connection_id})
        presence.close_connection(connection_id, ctx, gone_on_push=True)


def deliver(push: Push, frames: list[tuple[str, Frame]]) -> Delivery:
    """Send each (connection id, frame). Connections are served concurrently, each one's
    frames in the order given (a batch's messages arrive in seq order): a round starts the next
    frame of every connection still waiting, PUSH_CONCURRENCY at a time, before it reads their
    answers, so the requests travel together from this one thread. A push that fails otherwise
    than gone is logged and reported (the connection's later frames are still tried): the
    device catches up with `sync`. A gone connection gets nothing more."""
    queues: dict[str, list[Frame]] = {}
    for connection_id, frame in frames:
        queues.setdefault(connection_id, []).append(frame)
    outcomes = dict.fromkeys(queues, DELIVERED)
    waiting, position = list(queues), 0
    while waiting:
        for at in range(0, len(waiting), PUSH_CONCURRENCY):
            wave = [(cid, queues[cid][position]) for cid in waiting[at:at + PUSH_CONCURRENCY]]
            for (cid, _), outcome in zip(wave, _push_wave(push, wave), strict=True):
                if outcome != DELIVERED:  # FAILED stays unless GONE follows
                    outcomes[cid] = outcome
        position += 1
        waiting = [cid for cid in waiting
                   if outcomes[cid] != GONE and position < len(queues[cid])]
    delivery = Delivery(gone=[cid for cid, outcome in outcomes.items() if outcome == GONE],
                        failed=[cid for cid, outcome in outcomes.items() if outcome == FAILED])
    if frames:
        metrics.add_metric(name="Pushes", unit=MetricUnit.Count, value=len(frames))
    if delivery.gone:
        metrics.add_metric(name="PushesGone", unit=MetricUnit.Count, value=len(delivery.gone))
    return delivery


DELIVERED, GONE, FAILED = "delivered", "gone", "failed"


def _push_wave(push: Push, wave: list[tuple[str, Frame]]) -> list[str]:
    """One frame to each of a few connections: every request is sent before any answer is
    read. The outcome of each, in order."""
    flights: list[InFlight | Exception] = []
    for connection_id, frame in wave:
        try:
            flights.append(push.start(connection_id, frame))
        except Exception as error:  # noqa: BLE001 - reported with the others' outcomes below
            flights.append(error)
    outcomes = []
    for (connection_id, frame), flight in zip(wave, flights, strict=True):
        try:
            if isinstance(flight, Exception):
                raise flight
            outcomes.append(DELIVERED if flight.finish() else GONE)
        except Exception:  # noqa: BLE001 - one failed push must not stop the others
            logger.warning("push failed", exc_info=True, extra={
                "connection_id": connection_id, "frame_type": frame.get("type")})
            outcomes.append(FAILED)
    return outcomes


# --- the fan-out queue's worker -------------------------------------------------------------


@dataclass(frozen=True)
class QueuedBatch:
    """A queue message as the worker gets it."""

    body: str
    receive_count: int = 1
    sent_at_ms: int | None = None

    @classmethod
    def of_sqs(cls, record: dict[str, Any]) -> QueuedBatch:
        """From an SQS event record (`attributes` as strings, as Lambda gives them)."""
        attributes = record.get("attributes") or {}
        sent_at = attributes.get("SentTimestamp")
        return cls(body=record.get("body") or "",
                   receive_count=int(attributes.get("ApproximateReceiveCount") or 1),
                   sent_at_ms=int(sent_at) if sent_at else None)


def work_fanout(batches: list[QueuedBatch], ctx: Context) -> None:
    """Push every queued batch and drop the connections that are gone; a group send is first
    turned into batches of its members' connections. Raises `FanoutIncomplete` when a push
    failed otherwise, so that the queue delivers the batch again (and after its last try, to
    the dead-letter queue)."""
    failed = 0
    for queued in batches:
        try:
            work = fanout.read_batch(queued.body)
        except ValueError:
            logger.error("dropping a fan-out message that is not one", exc_info=True)
            continue
        frames = fanout.unexpired(work.frames, ctx.clock.now_ms())
        if len(frames) < len(work.frames):
            metrics.add_metric(name="FanoutExpiredSkipped", unit=MetricUnit.Count,
                               value=len(work.frames) - len(frames))
        if isinstance(work, fanout.GroupSend):
            pushes = group_send_pushes(work.conversation_id, work.sender_id, frames, ctx)
        else:
            pushes = [(cid, frame) for cid in work.connection_ids for frame in frames]
        _measure_batch(queued, len(pushes), ctx)
        failed += _push_or_queue(pushes, ctx)
    if failed:
        raise FanoutIncomplete(f"{failed} connection(s) not reached; the batch comes back")


def group_send_pushes(conversation_id: str, sender_id: str, frames: list[Frame],
                      ctx: Context) -> list[tuple[str, Frame]]:
    """A group send's frames for every member's connection but the sender's own (pushed by
    the send itself) and those of members who blocked the sender."""
    listeners = ctx.db.run_read("fanout.audience", conversations.connections_of_conversation,
                                conversation_id, sender_id)
    return [(listener.connection_id, frame) for listener in listeners
            if listener.user_id != sender_id and not listener.blocked
            for frame in frames]


def _push_or_queue(pushes: list[tuple[str, Frame]], ctx: Context) -> int:
    """Push a batch's frames, or, when they reach more connections than one batch holds (a
    group send just read), queue them as batches for other workers. Returns how many
    connections a push failed for."""
    planned = fanout.plan(pushes, answering=None, async_above=fanout.CONNECTIONS_PER_MESSAGE)
    if planned.queued and ctx.fanout is not None:
        ctx.fanout.send(planned.queued)  # a failure raises: the group send comes back
        metrics.add_metric(name="FanoutEnqueued", unit=MetricUnit.Count,
                           value=len(planned.queued))
        return 0
    delivery = deliver(ctx.push, pushes)
    drop_connections(delivery.gone, ctx)
    return len(delivery.failed)


def _measure_batch(queued: QueuedBatch, pushes: int, ctx: Context) -> None:
    if queued.sent_at_ms is not None:
        metrics.add_metric(name="FanoutBatchAgeMs", unit=MetricUnit.Milliseconds,
                           value=max(0, ctx.clock.now_ms() - queued.sent_at_ms))
    if queued.receive_count > 1:
        metrics.add_metric(name="FanoutRedeliveries", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="FanoutRedeliveredPushes", unit=MetricUnit.Count, value=pushes)
        logger.info("fan-out batch delivered again", extra={
            "receive_count": queued.receive_count, "pushes": pushes})
