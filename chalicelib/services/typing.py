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

Frames of one connection are handled concurrently, so a stop can overtake the start typed
just before it. Each pushed frame carries `at`, when the frame reached the server, and
receivers keep the newest per person (a stop wins a tie). The memory drops what it already
knows to be overtaken, which saves the push.
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
        # the newest frame passed on: (when it reached the server, active)
        self.passed: OrderedDict[tuple[str, str], tuple[int, bool]] = OrderedDict()
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

    def held_back(self, key: tuple[str, str], active: bool, at: int) -> bool:
        """Whether a frame that reached the server at `at` is not to be passed on: an
        `active: true` while the last one passed on is still fresh, or any frame older than
        the newest passed on (a start and a stop of the same instant: the stop is newer)."""
        with self.lock:
            last = self.passed.get(key)
            if last is None:
                return False
            if _overtaken(last, active, at):
                return True
            last_at, last_active = last
            return active and last_active and at - last_at < ACTIVE_EVERY_MS

    def record(self, key: tuple[str, str], active: bool, at: int) -> bool:
        """Remember a frame passed on; False (and nothing remembered) when a newer one was
        passed on meanwhile, by a frame handled concurrently."""
        with self.lock:
            _forget(self.passed, at - ACTIVE_EVERY_MS, lambda last: last[0])
            last = self.passed.get(key)
            if last is not None and _overtaken(last, active, at):
                return False
            self.passed.pop(key, None)
            self.passed[key] = (at, active)
            _bound(self.passed)
            return True


def _overtaken(last: tuple[int, bool], active: bool, at: int) -> bool:
    """Whether a frame that reached the server at `at` is older than the `last` passed on (a
    start and a stop of the same instant: the stop is the newer)."""
    last_at, last_active = last
    return at < last_at or (at == last_at and active and not last_active)


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


def typing(caller: Caller, frame: dict[str, Any], ctx: Context, *,
           received_at: int | None = None) -> None:
    """Pass `typing {conversation_id, user_id, active, at}` on to the other participants'
    live connections: those who accepted the conversation, and not between people of whom
    one blocked the other. Nothing at all while the typist has not accepted it themself (a
    request reveals nothing). A connection found gone is left to the sweep (dropping it
    would be a write). `received_at`: when the frame reached the server (API Gateway's
    request time), else now."""
    conversation_id = string_field(frame, "conversation_id", max_length=ID_MAX)
    active = frame.get("active")
    if not isinstance(active, bool):
        raise InvalidInput("active must be true or false")
    key = (caller.connection_id, conversation_id)
    at = received_at if isinstance(received_at, int) else ctx.clock.now_ms()
    if _memory.held_back(key, active, at):
        return  # still fresh on the others' screens, or overtaken by a newer frame
    audience = ctx.db.run_read("typing.audience", _audience_txn, conversation_id,
                               caller.user_id)
    if audience is None:
        raise NotFound("no such conversation")
    if not _memory.record(key, active, at):
        return  # a newer frame of this connection was passed on while this one read
    pushed = typing_frame(conversation_id, caller.user_id, active=active, at=at)
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
