"""Reading what was sent: history pages (forwards and back) and offline sync, each bounded in
the rows it reads and the bytes it returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import InvalidInput, NotFound
from chalicelib.inputs import MAX_SAFE_INTEGER, int_field
from chalicelib.services.context import Caller, Context
from chalicelib.services.delivery import push_frames
from chalicelib.storage import conversations, messages
from chalicelib.storage.conversations import DECLINED, Conversation, Participant
from chalicelib.storage.database import Transaction
from chalicelib.wire import message_view, with_req

HISTORY_LIMIT, HISTORY_MAX = 50, 200
SYNC_LIMIT, SYNC_MAX = 100, 500
# A push is at most 128 KB: a sync reply's messages stay within this many bytes.
SYNC_REPLY_BUDGET_BYTES = 96 * 1024
# What a message's frame adds to its body (ids, times, field names), counted against it.
MESSAGE_OVERHEAD_BYTES = 320
# The work of one sync call, whatever the caller has: message rows examined, conversations.
SYNC_ROWS_PER_CALL = 1000
SYNC_CONVERSATIONS_PER_REPLY = 100


def history(user_id: str, conversation_id: str, query: dict[str, Any],
            ctx: Context) -> dict[str, Any]:
    """`GET /conversations/{id}/messages`: unexpired messages after `after_seq`, or the newest
    before `before_seq` (scrolling back), ascending either way."""
    if "after_seq" in query and "before_seq" in query:
        raise InvalidInput("use after_seq or before_seq, not both")
    after_seq = int_field(query, "after_seq", default=0)
    before_seq = int_field(query, "before_seq", minimum=1) if "before_seq" in query else None
    limit = int_field(query, "limit", minimum=1, maximum=HISTORY_MAX, default=HISTORY_LIMIT)
    now = ctx.clock.now_ms()

    def history_txn(txn: Transaction) -> dict[str, Any]:
        me = conversations.get_participant(txn, conversation_id, user_id)
        if me is None or me.consent == DECLINED:
            raise NotFound("no such conversation")
        if before_seq is None:
            page = messages.messages_after(txn, conversation_id,
                                           after_seq=max(after_seq, me.joined_seq),
                                           now_ms=now, limit=limit + 1)
            shown = page[:limit]
        else:
            page = messages.messages_before(txn, conversation_id, before_seq=before_seq,
                                            floor_seq=me.joined_seq, now_ms=now,
                                            limit=limit + 1)
            shown = page[-limit:]
        return {"messages": [message_view(m) for m in shown], "has_more": len(page) > limit}

    return ctx.db.run_read("messaging.history", history_txn)


def sync(caller: Caller, frame: dict[str, Any], ctx: Context) -> None:
    """What this device missed, per conversation, from its cursors (a conversation it does
    not list comes from its start). One call does bounded work: conversations with something
    to deliver come first, and those that did not fit make the reply say
    `more_conversations`, so the client asks again with the cursors it now holds."""
    cursors = frame.get("cursors", {})
    if not isinstance(cursors, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            and 0 <= v <= MAX_SAFE_INTEGER for k, v in cursors.items()):
        raise InvalidInput("cursors must map conversation ids to whole numbers")
    limit = int_field(frame, "limit", minimum=1, maximum=SYNC_MAX, default=SYNC_LIMIT)
    now = ctx.clock.now_ms()
    reply = ctx.db.run_read("messaging.sync", _sync_txn, caller.user_id, cursors, limit, now)
    frame_out = with_req({"type": "sync", "server_time": now,
                          "conversations": _fit(reply.entries),
                          "more_conversations": reply.more_conversations}, frame.get("req"))
    push_frames([(caller.connection_id, frame_out)], ctx)


@dataclass
class _SyncBudget:
    rows: int = SYNC_ROWS_PER_CALL
    bytes: int = SYNC_REPLY_BUDGET_BYTES

    @property
    def spent(self) -> bool:
        return self.rows <= 0 or self.bytes < MESSAGE_OVERHEAD_BYTES


@dataclass
class _SyncReply:
    entries: list[dict[str, Any]]
    more_conversations: bool


def _sync_txn(txn: Transaction, user_id: str, cursors: dict[str, int], limit: int,
              now: int) -> _SyncReply:
    mine = conversations.conversations_of_user(txn, user_id)
    if set(cursors) - {conversation.id for conversation, _ in mine}:
        raise NotFound("no such conversation")
    # Behind: the device lists it not at all, or below its last seq. Up to date ones only
    # refresh counts, so they come last and are left out first.
    behind = [pair for pair in mine if cursors.get(pair[0].id, -1) < pair[0].last_seq]
    behind_ids = {conversation.id for conversation, _ in behind}
    up_to_date = [pair for pair in mine if pair[0].id not in behind_ids]
    budget = _SyncBudget()
    entries: list[dict[str, Any]] = []
    for index, (conversation, me) in enumerate(behind):
        if len(entries) >= SYNC_CONVERSATIONS_PER_REPLY or budget.spent:
            return _SyncReply(entries, more_conversations=True)
        entries.append(_entry(txn, conversation, me, cursors, limit, now, budget))
        if entries[-1]["has_more"]:  # out of budget (or past `limit`): the rest next time
            return _SyncReply(entries, more_conversations=index + 1 < len(behind))
    for conversation, me in up_to_date[:SYNC_CONVERSATIONS_PER_REPLY - len(entries)]:
        entries.append(_entry(txn, conversation, me, cursors, limit, now, budget))
    return _SyncReply(entries, more_conversations=False)


def _entry(txn: Transaction, conversation: Conversation, me: Participant,
           cursors: dict[str, int], limit: int, now: int,
           budget: _SyncBudget) -> dict[str, Any]:
    after = max(cursors.get(conversation.id, 0), me.joined_seq)
    page, more = [], False
    if after < conversation.last_seq:
        page, examined, more = messages.messages_after_within(
            txn, conversation.id, after_seq=after, now_ms=now,
            limit=min(limit, budget.rows), max_bytes=budget.bytes,
            overhead_bytes=MESSAGE_OVERHEAD_BYTES)
        budget.rows -= examined
        budget.bytes -= sum(len(m.body.encode()) + MESSAGE_OVERHEAD_BYTES for m in page)
    first = messages.oldest_available_seq(txn, conversation.id, after_seq=me.joined_seq,
                                          now_ms=now)
    return {
        "conversation_id": conversation.id, "last_seq": conversation.last_seq,
        "read_seq": me.read_seq,
        "unread_count": messages.unread_count(txn, conversation.id, me.user_id,
                                              read_seq=me.read_seq, now_ms=now),
        "messages": [message_view(m) for m in page],
        "has_more": more,
        "first_seq": first if first is not None else conversation.last_seq + 1,
    }


def _fit(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last guard of one push: should bodies that JSON escapes grow past the estimate,
    the messages past the budget are left for the next page (has_more) rather than making a
    frame API Gateway would refuse."""
    budget = SYNC_REPLY_BUDGET_BYTES
    for entry in entries:
        kept = []
        for message in entry["messages"]:
            size = len(json.dumps(message, ensure_ascii=False).encode())
            if size > budget:
                entry["has_more"] = True
                break
            budget -= size
            kept.append(message)
        entry["messages"] = kept
    return entries
