"""`typing`: "I am (no longer) typing in this conversation", passed on to the other
participants' live connections and never stored.

Typing is chatter: a client may send it every few seconds while its user types. So it costs
the database reads only (the caller's connection, the conversation's listeners and blocks)
and writes nothing at all: not the connection's frame count, not its activity. Its limits live
in the container's memory instead, bounded in size: a budget per connection (too many typing
frames and the connection gets `rate_limited`), and a throttle per connection and
conversation that passes on at most one `active: true` per window (`active: false` always
passes, and lets the next `true` through). Each container keeps its own memory, so both are a
cost bound, not an exact count.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from chalicelib.errors import InvalidInput, NotFound, RateLimited
from chalicelib.inputs import string_field
from chalicelib.services.context import Caller, Context
from chalicelib.services.delivery import deliver
from chalicelib.storage import conversations
from chalicelib.storage.conversations import ACCEPTED, DECLINED
from chalicelib.storage.database import Transaction
from chalicelib.wire import typing_frame

ID_MAX = 64
ACTIVE_EVERY_MS = 3_000  # at most one `active: true` passed on per connection and conversation
BUDGET_FRAMES = 10  # typing frames a connection may send per budget window
BUDGET_WINDOW_MS = 10_000
MAX_ENTRIES = 10_000  # per table; the least recently used entry goes first


class _Memory:
    """The throttle's and the budget's state: two small LRU tables under one lock (the
    local stack serves frames on threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.passed: OrderedDict[tuple[str, str], int] = OrderedDict()  # last `true` passed on
        self.budgets: OrderedDict[str, tuple[int, int]] = OrderedDict()  # (window start, used)

    def spend(self, connection_id: str, now: int) -> int | None:
        """One frame of the connection's budget; the ms to wait when it is spent."""
        with self.lock:
            _forget(self.budgets, now - BUDGET_WINDOW_MS, lambda entry: entry[0])
            start, used = self.budgets.pop(connection_id, (now, 0))
            if now - start >= BUDGET_WINDOW_MS or now < start:
                start, used = now, 0
            self.budgets[connection_id] = (start, used + 1)
            _bound(self.budgets)
            return start + BUDGET_WINDOW_MS - now if used >= BUDGET_FRAMES else None

    def throttled(self, key: tuple[str, str], now: int) -> bool:
        with self.lock:
            last = self.passed.get(key)
            return last is not None and 0 <= now - last < ACTIVE_EVERY_MS

    def record(self, key: tuple[str, str], active: bool, now: int) -> None:
        with self.lock:
            _forget(self.passed, now - ACTIVE_EVERY_MS, lambda last: last)
            self.passed.pop(key, None)
            if active:
                self.passed[key] = now
                _bound(self.passed)


def _forget(table: OrderedDict, before: int, time_of: Any) -> None:
    """Drop the entries, oldest first, that no longer limit anything."""
    while table:
        key, entry = next(iter(table.items()))
        if time_of(entry) > before:
            return
        del table[key]


def _bound(table: OrderedDict) -> None:
    while len(table) > MAX_ENTRIES:
        table.popitem(last=False)


_memory = _Memory()


def spend_budget(connection_id: str, ctx: Context) -> None:
    """A typing frame against the connection's in-memory budget (before anything is read),
    else `rate_limited`."""
    wait = _memory.spend(connection_id, ctx.clock.now_ms())
    if wait is not None:
        raise RateLimited("too many typing frames; slow down", retry_after_ms=max(1, wait))


def typing(caller: Caller, frame: dict[str, Any], ctx: Context) -> None:
    """Pass `typing {conversation_id, user_id, active}` on to the other participants' live
    connections: those who accepted the conversation, and not between people of whom one
    blocked the other. Nothing at all while the typist has not accepted it themself (a
    request reveals nothing). A connection found gone is left to the sweep (dropping it
    would be a write)."""
    conversation_id = string_field(frame, "conversation_id", max_length=ID_MAX)
    active = frame.get("active")
    if not isinstance(active, bool):
        raise InvalidInput("active must be true or false")
    key = (caller.connection_id, conversation_id)
    now = ctx.clock.now_ms()
    if active and _memory.throttled(key, now):
        return  # the last one passed on is still fresh on the others' screens
    audience = ctx.db.run_read("typing.audience", _audience_txn, conversation_id,
                               caller.user_id)
    if audience is None:
        raise NotFound("no such conversation")
    _memory.record(key, active, now)
    pushed = typing_frame(conversation_id, caller.user_id, active=active)
    deliver(ctx.push, [(connection_id, pushed) for connection_id in audience])


def _audience_txn(txn: Transaction, conversation_id: str, typist: str) -> list[str] | None:
    """The connection ids to tell, or None when the typist is not a participant. Reads
    only."""
    listeners = conversations.listeners_later(txn, conversation_id, typist, either_way=True)
    me = conversations.get_participant(txn, conversation_id, typist)  # sends both
    if me is None or me.consent == DECLINED:
        return None
    if me.consent != ACCEPTED:
        return []
    return [listener.connection_id for listener in listeners.value
            if listener.user_id != typist and listener.consent == ACCEPTED
            and not listener.blocked]
