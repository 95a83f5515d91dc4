"""Sending messages and moving cursors: idempotent ordered sends (one message or a batch),
fan-out, receipts, unread counts. (History and offline sync are in `reading.py`.)

Each path keeps its database round trips few by queueing what it does not need to read yet
(`Transaction.later`): a send is the caller's read, then the limits with the seq, then the
rows with the COMMIT; an ack or a read is the limits with the caller's read (one statement),
then the update with the COMMIT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.crypto import keyed_hash, same
from chalicelib.errors import (
    Conflict,
    EphemeraError,
    Forbidden,
    InvalidInput,
    NotFound,
    TooLarge,
)
from chalicelib.ids import new_id
from chalicelib.inputs import int_field, string_field
from chalicelib.observability import metrics
from chalicelib.services import fanout
from chalicelib.services.context import (
    Caller,
    Context,
    caller_from,
    caller_of,
    count_frame,
    count_frame_txn,
)
from chalicelib.services.delivery import (
    drop_connections,
    group_send_pushes,
    push_frames,
    queue_or_push,
)
from chalicelib.services.limits import NEW_ACCOUNT_MS, SPAM_MIN_BODY
from chalicelib.services.presence import reveal
from chalicelib.storage import connections, conversations, messages
from chalicelib.storage.conversations import (
    ACCEPTED,
    DECLINED,
    REQUEST,
    Audience,
    Listener,
)
from chalicelib.storage.database import Later, Transaction
from chalicelib.storage.messages import IdempotencyKey, Message
from chalicelib.wire import Frame, message_frame, receipt_frame, sent_frame, unread_frame

MAX_BODY_BYTES = 16 * 1024
MAX_BATCH = 20  # messages in one `send` frame (the default burst limit, too)
CLIENT_MSG_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")  # fullmatch: Python's `$` passes a final \n
IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000
# Transactions of one send frame that lose to concurrent copies before it gives up.
CONCURRENT_COPY_ATTEMPTS = 3
ID_MAX = 64


# --- send ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Draft:
    """One message of a `send` frame, checked, with its body's keyed hash."""

    client_msg_id: str
    body: str
    body_hash: str


@dataclass(frozen=True)
class _Send:
    conversation_id: str
    drafts: list[_Draft]  # in the order the user wrote them


def client_msg_ids_of(frame: dict[str, Any]) -> list[str]:
    """The ids a `send` frame names (for the caller's one read); nothing for a bad frame."""
    listed = frame.get("messages")
    if isinstance(listed, list):
        return [m["client_msg_id"] for m in listed[:MAX_BATCH] if isinstance(m, dict)
                and isinstance(m.get("client_msg_id"), str)]
    single = frame.get("client_msg_id")
    return [single] if isinstance(single, str) else []


def send(caller: Caller, frame: dict[str, Any], ctx: Context) -> None:
    """Store each new message once, in the order written, and push it to every other
    connection of every participant; answer every message with its own `sent`.

    A message whose `client_msg_id` was stored before is answered from its stored key
    (`duplicate`), whatever came since (a block, a departure): a retry is not a new send.
    The new ones of one frame are one transaction: their limits (each message counts), the
    next seqs as a member (no row updated: `not_found`), the keys, the messages. A concurrent
    copy of the same send loses on a key: it rolls back (seqs included, so no gap), is
    answered from what the winner stored, and stores what the winner did not have (a retry
    batched with messages written since). Pushes happen after the commit; a failed push
    loses nothing, since the device catches up with `sync`.
    """
    now = ctx.clock.now_ms()
    try:
        request = _parse_send(frame, ctx)
        retried, fresh = _split_retries(request, caller.prior_sends)
        if fresh:
            _admit(caller)
    except EphemeraError:
        count_frame(caller.connection_id, ctx, touch=caller.touch_due)
        raise
    req = frame.get("req")
    for _attempt in range(CONCURRENT_COPY_ATTEMPTS):
        limits = _send_limits(caller, request, fresh, now)
        if not fresh:  # only retries
            _answer_retries(caller, retried, limits, req, now, ctx)
            return
        try:
            stored, audience = ctx.db.run_transaction("messaging.send", _send_txn, caller,
                                                     request, fresh, limits, now, ctx)
            break
        except Conflict:  # a concurrent copy stored some of them first: store the rest
            prior = ctx.db.run_read("messaging.retry", messages.idempotency_keys_of,
                                   caller.user_id, [d.client_msg_id for d in request.drafts])
            retried, fresh = _split_retries(request, prior)
        except NotFound:  # left or removed since the caller's read
            count_frame(caller.connection_id, ctx)
            raise
    else:  # copies kept racing it: `internal` is retried by clients, `conflict` is final
        raise EphemeraError("that send is still in progress; retry it")
    _answer(caller, stored, retried, audience.value.listeners, req, now, ctx)
    if not audience.value.complete:
        _fan_out_to_group(request.conversation_id, caller, [m for m, _ in stored], ctx)
    if caller.conversation is not None and caller.conversation.consent == REQUEST:
        reveal(caller.user_id, request.conversation_id, ctx)  # sending accepted it


def _parse_send(frame: dict[str, Any], ctx: Context) -> _Send:
    """The single form (`client_msg_id`, `body`) or the batch form (`messages`), checked
    whole: one bad message refuses the frame."""
    conversation_id = string_field(frame, "conversation_id", max_length=ID_MAX)
    if "messages" in frame:
        if "client_msg_id" in frame or "body" in frame:
            raise InvalidInput("send either messages or client_msg_id and body, not both")
        listed = frame["messages"]
        if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_BATCH:
            raise InvalidInput(f"messages must be a list of 1 to {MAX_BATCH} messages")
        if not all(isinstance(entry, dict) for entry in listed):
            raise InvalidInput("each of messages must be an object with client_msg_id and body")
        drafts = [_draft(entry, ctx) for entry in listed]
    else:
        drafts = [_draft(frame, ctx)]
    if len({d.client_msg_id for d in drafts}) < len(drafts):
        raise InvalidInput("each message of a batch needs its own client_msg_id")
    return _Send(conversation_id, drafts)


def _draft(fields: dict[str, Any], ctx: Context) -> _Draft:
    client_msg_id = fields.get("client_msg_id")
    if not isinstance(client_msg_id, str) or not CLIENT_MSG_ID.fullmatch(client_msg_id):
        raise InvalidInput("client_msg_id must be 8 to 64 of A-Z, a-z, 0-9, _ and -")
    body = fields.get("body")
    if not isinstance(body, str) or not body:
        raise InvalidInput("body must be a non-empty string")
    if len(body.encode("utf-8")) > MAX_BODY_BYTES:
        raise TooLarge(f"body is over {MAX_BODY_BYTES} bytes of UTF-8")
    return _Draft(client_msg_id, body, keyed_hash(ctx.keys.body, body))


def _split_retries(request: _Send, prior: dict[str, IdempotencyKey],
                   ) -> tuple[list[IdempotencyKey], list[_Draft]]:
    """The stored keys of the messages sent before, and the drafts that are new. An id
    reused for another message (another body or conversation) refuses the frame."""
    retried, fresh = [], []
    for draft in request.drafts:
        key = prior.get(draft.client_msg_id)
        if key is None:
            fresh.append(draft)
            continue
        # A key stored before bodies were hashed with a key has no hash left (erased by the
        # migration): it is matched on its conversation alone.
        same_body = not key.body_hash or same(key.body_hash, draft.body_hash)
        if key.conversation_id != request.conversation_id or not same_body:
            raise Conflict("client_msg_id was already used for another message",
                           client_msg_id=draft.client_msg_id)
        retried.append(key)
    return retried, fresh


def _admit(caller: Caller) -> None:
    named = caller.conversation
    if named is None or named.consent in (None, DECLINED):
        raise NotFound("no such conversation")
    if named.blocked:
        raise Forbidden("you cannot send to this conversation")


def _send_limits(caller: Caller, request: _Send, fresh: list[_Draft],
                 now: int) -> list[tuple[str, str]]:
    """The send policies that apply: the connection's frame budget, a burst and a sustained
    rate per sender (stricter for an account younger than a day), a rate per conversation,
    and identical bodies (spam's tell) from one sender across conversations."""
    new_account = now - caller.account_since < NEW_ACCOUNT_MS
    checks = [("frames_per_connection", caller.connection_id),
              ("send_burst_per_user", caller.user_id),
              ("send_per_new_user" if new_account else "send_per_user", caller.user_id),
              ("send_per_conversation", request.conversation_id)]
    checks += sorted({("send_same_body", f"{caller.user_id}:{draft.body_hash}")
                      for draft in fresh if len(draft.body) >= SPAM_MIN_BODY})
    return checks


def _send_txn(txn: Transaction, caller: Caller, request: _Send, fresh: list[_Draft],
              limits: list[tuple[str, str]], now: int,
              ctx: Context) -> tuple[list[tuple[Message, IdempotencyKey]],
                                     Later[Audience]]:
    """Three statements' worth of round trips whatever the batch: the limits travel with the
    seq update, and the rows and the audience's read with the COMMIT."""
    verdict = ctx.limiter.count(txn, limits, now, cost=len(fresh))
    last_seq = conversations.allocate_seq(txn, request.conversation_id, caller.user_id, now,
                                          count=len(fresh))
    verdict.enforce()  # a denial rolls the whole send back, its own hits and seqs included
    if last_seq is None:
        raise NotFound("no such conversation")
    named = caller.conversation
    assert named is not None  # _admit checked it
    if named.consent == REQUEST:
        conversations.set_consent(txn, request.conversation_id, caller.user_id, ACCEPTED)
    if caller.touch_due:
        connections.touch_connection(txn, caller.connection_id, now)
    first_seq = last_seq - len(fresh) + 1
    stored = [Message(
        id=new_id(now), conversation_id=request.conversation_id, seq=first_seq + index,
        sender_id=caller.user_id, sender_device_id=caller.device_id,
        client_msg_id=draft.client_msg_id, body=draft.body, created_at=now,
        expires_at=now + named.ttl_seconds * 1000,
    ) for index, draft in enumerate(fresh)]
    keys = [IdempotencyKey(
        sender_id=caller.user_id, client_msg_id=m.client_msg_id,
        conversation_id=m.conversation_id, message_id=m.id, seq=m.seq, body_hash=d.body_hash,
        created_at=now, message_expires_at=m.expires_at,
        keep_until=max(now + IDEMPOTENCY_WINDOW_MS, m.expires_at),
    ) for m, d in zip(stored, fresh, strict=True)]
    messages.insert_idempotency_keys(txn, keys)  # first: a duplicate stops the rest
    messages.insert_messages(txn, stored)
    # With a fan-out queue, a big group's members are read by the worker, not here.
    audience = conversations.audience_later(
        txn, request.conversation_id, caller.user_id, sender_id=caller.user_id,
        all_up_to_members=ctx.fanout_async_above if ctx.fanout is not None else None)
    return list(zip(stored, keys, strict=True)), audience


def _answer_retries(caller: Caller, retried: list[IdempotencyKey],
                    limits: list[tuple[str, str]], req: Any, now: int, ctx: Context) -> None:
    """Messages stored before: they still pass the limits, change nothing, and are answered
    from their stored keys."""
    ctx.limiter.check(limits)
    _answer(caller, [], retried, [], req, now, ctx)


def _answer(caller: Caller, stored: list[tuple[Message, IdempotencyKey]],
            retried: list[IdempotencyKey], audience: list[Listener],
            req: Any, now: int, ctx: Context) -> None:
    """Every message's `sent` to the sender, in seq order, then the new ones to everyone
    else's connections (one connection's frames are pushed in order)."""
    answers = [(key.seq, sent_frame(key, duplicate=False, now_ms=now, req=req))
               for _, key in stored]
    answers += [(key.seq, sent_frame(key, duplicate=True, now_ms=now, req=req))
                for key in retried]
    frames: list[tuple[str, Frame]] = [(caller.connection_id, frame)
                                       for _, frame in sorted(answers, key=lambda a: a[0])]
    receivers = [listener.connection_id for listener in audience
                 if listener.connection_id != caller.connection_id
                 and not listener.blocked]
    pushed = [message_frame(message) for message, _ in stored]  # one frame for every receiver
    frames += [(connection_id, frame) for connection_id in receivers for frame in pushed]
    if stored:
        metrics.add_metric(name="Sends", unit=MetricUnit.Count, value=len(stored))
    if retried:
        metrics.add_metric(name="DuplicatesSuppressed", unit=MetricUnit.Count, value=len(retried))
    push_frames(frames, ctx, answering=caller.connection_id)


def _fan_out_to_group(conversation_id: str, caller: Caller, stored: list[Message],
                      ctx: Context) -> None:
    """The new messages to a big group's other members, through the fan-out worker, which
    reads their connections (if the queue refuses, they are read and pushed from here)."""
    frames = [message_frame(message) for message in stored]
    drop_connections(queue_or_push(
        fanout.group_send_bodies(frames, conversation_id, caller.user_id),
        lambda: group_send_pushes(conversation_id, caller.user_id, frames, ctx), ctx), ctx)


# --- receipts -----------------------------------------------------------------------------


def ack(connection_id: str, frame: dict[str, Any], ctx: Context) -> Caller:
    """"This device holds everything up to seq": the user's delivered cursor moves forward
    (any device's ack counts), and the other participants get a `delivered` receipt. Returns
    the caller, read in the cursors' own transaction."""
    return _move_cursors(connection_id, frame, ("delivered",), ctx)


def read(connection_id: str, frame: dict[str, Any], ctx: Context) -> Caller:
    """"I have read up to seq": the read cursor (and delivered, which reading implies) moves
    forward; others get receipts, my own devices the new unread count."""
    return _move_cursors(connection_id, frame, ("read", "delivered"), ctx)


@dataclass(frozen=True)
class _Moved:
    caller: Caller
    cursors: dict[str, int]  # the cursors that moved, to their new values
    went: Later[bool] | None = None  # False: another device moved them further first
    audience: Later[Audience] | None = None
    unread: Later[int] | None = None


def _move_cursors(connection_id: str, frame: dict[str, Any], names: tuple[str, ...],
                  ctx: Context) -> Caller:
    try:
        conversation_id = string_field(frame, "conversation_id", max_length=ID_MAX)
        seq = int_field(frame, "seq", minimum=0)
    except EphemeraError:
        caller = caller_of(connection_id, ctx)  # a connection nobody is behind: unauthorized
        count_frame(connection_id, ctx, touch=caller.touch_due)
        raise
    now = ctx.clock.now_ms()
    moved = ctx.db.run_transaction(f"messaging.{names[0]}", _move_txn, connection_id,
                                  conversation_id, dict.fromkeys(names, seq), now, ctx)
    caller = moved.caller
    if moved.went is None or not moved.went.value:
        return caller
    audience = moved.audience.value.listeners if moved.audience is not None else []
    frames = _receipts(caller, conversation_id, moved.cursors, audience)  # my own too
    if moved.unread is not None:
        unread = unread_frame(conversation_id, moved.unread.value)
        frames += [(listener.connection_id, unread) for listener in audience
                   if listener.user_id == caller.user_id]
    push_frames(frames, ctx)
    return caller


def _move_txn(txn: Transaction, connection_id: str, conversation_id: str,
              targets: dict[str, int], now: int, ctx: Context) -> _Moved:
    """Two round trips: the frame's count with who the caller is and their cursors; then the
    update, the audience and the unread count with the COMMIT. A connection nobody is behind
    rolls it all back, its count included. Cursors only move forward, capped at the last
    seq; if another device moved them further in between, this one moves nothing."""
    verdict = count_frame_txn(txn, connection_id, now, ctx, touch=False)  # not known yet
    found, before = connections.member_later(txn, connection_id, conversation_id).value
    caller = caller_from(connection_id, found, ctx)
    verdict.enforce()
    if caller.touch_due:
        connections.touch_connection(txn, connection_id, now)  # goes with the next statement
    if before is None:
        raise NotFound("no such conversation")
    current = {"read": before.read, "delivered": before.delivered}
    moved = {name: min(seq, before.last_seq) for name, seq in targets.items()
             if min(seq, before.last_seq) > current[name]}
    if not moved:
        return _Moved(caller, {})
    went = conversations.move_cursors(txn, conversation_id, caller.user_id, moved)
    unread = None
    if "read" in moved:
        unread = messages.unread_count_later(txn, conversation_id, caller.user_id,
                                             read_seq=moved["read"], now_ms=now)
    return _Moved(caller, moved, went, conversations.audience_later(
        txn, conversation_id, caller.user_id, all_up_to_members=ctx.presence_push_max_members,
        sender_id=caller.user_id, either_way=True), unread)


def _receipts(caller: Caller, conversation_id: str, moved: dict[str, int],
              audience: list[Listener]) -> list[tuple[str, Frame]]:
    """A receipt per moved cursor, for the other participants' connections (in a group of
    more than PRESENCE_PUSH_MAX_MEMBERS members the audience holds only the caller's own:
    everyone's receipts to everyone would cost n² pushes per message). Nothing while the
    caller has not accepted the conversation (a request reveals nothing), none between people
    of whom one blocked the other (as for presence and typing), and `read` receipts only
    between people who both have read receipts on."""
    mine = next((listener for listener in audience if listener.user_id == caller.user_id),
                None)
    if mine is None or mine.consent != ACCEPTED:
        return []
    return [
        (listener.connection_id, receipt_frame(conversation_id, caller.user_id, kind, seq))
        for kind, seq in sorted(moved.items()) for listener in audience
        if listener.user_id != caller.user_id and not listener.blocked
        and (kind != "read" or (mine.read_receipts and listener.read_receipts))
    ]
