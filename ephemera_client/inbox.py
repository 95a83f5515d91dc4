"""Releases incoming messages exactly once and in `seq` order per conversation (PROTOCOL "Keeping
order"): what arrives after a gap waits until the gap fills, expires, or a `sync` answers for it.

Sans-IO: the caller feeds it frames and the time (monotonic seconds), and sends the `sync` and
`ack` frames it asks for (`gaps_due()`, `acks_due()`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

GAP_HOLD_S = 1.0


@dataclass
class InboxStats:
    duplicates: int = 0  # messages dropped because already held or released
    reordered: int = 0  # messages that waited for an earlier seq and were released later
    gap_syncs: int = 0  # times gaps_due() asked for a sync


@dataclass
class _Conversation:
    cursor: int = 0  # every seq up to here was released, or needs no release
    held: dict[int, dict[str, Any]] = field(default_factory=dict)  # received above a gap
    gone: set[int] = field(default_factory=set)  # above the cursor, nothing to release:
    # expired or unsent, or this connection's own sends
    waiting_since: float | None = None  # since when the cursor is stuck behind held or gone seqs
    acked_cursor: int = 0


class Inbox:
    """One device's reorder buffer, for every conversation it takes part in."""

    def __init__(self, gap_hold_s: float = GAP_HOLD_S, remembered_ids: int = 10_000) -> None:
        self.stats = InboxStats()
        self._gap_hold_s = gap_hold_s
        self._remembered_ids = remembered_ids
        self._seen: OrderedDict[str, None] = OrderedDict()  # message ids, oldest first
        self._conversations: dict[str, _Conversation] = {}
        # The newest `now` given: frames without a time of their own arm gap timers with it.
        self._now = 0.0

    def knows(self, conversation_id: str) -> bool:
        return conversation_id in self._conversations

    def cursor(self, conversation_id: str) -> int | None:
        conv = self._conversations.get(conversation_id)
        return None if conv is None else conv.cursor

    def cursors(self) -> dict[str, int]:
        return {cid: conv.cursor for cid, conv in self._conversations.items()}

    def held(self, conversation_id: str) -> int:
        conv = self._conversations.get(conversation_id)
        return 0 if conv is None else len(conv.held)

    def forget(self, conversation_id: str) -> None:
        self._conversations.pop(conversation_id, None)

    def start_at(self, conversation_id: str, seq: int) -> list[dict[str, Any]]:
        """The device already holds everything up to `seq`, and the server knows it."""
        conv = self._conversation(conversation_id)
        conv.acked_cursor = max(conv.acked_cursor, seq)
        self.stats.duplicates += sum(1 for held_seq in conv.held if held_seq <= seq)
        return self._advance(conv, to=seq)

    def receive(self, message: dict[str, Any], now: float) -> list[dict[str, Any]]:
        """A live `message` frame; returns what is now releasable, in seq order."""
        self._now = max(self._now, now)
        conv = self._conversation(message["conversation_id"])
        if not self._hold(conv, message):
            return []
        return self._advance(conv, fresh={message["seq"]})

    def own_send(self, conversation_id: str, seq: int, message_id: str) -> list[dict[str, Any]]:
        """This connection's message was stored at `seq`: it gets `sent`, never `message`."""
        conv = self._conversation(conversation_id)
        self._remember(message_id)
        if seq <= conv.cursor or seq in conv.held:
            return []
        conv.gone.add(seq)
        return self._advance(conv)

    def expired(self, conversation_id: str, ranges: list[list[int]],
                up_to_seq: int | None) -> list[dict[str, Any]]:
        """Seqs that are gone for good stop being gaps; held copies of them are dropped."""
        conv = self._conversations.get(conversation_id)
        if conv is None:  # nothing held; a sync will say where it starts
            return []
        released = self._advance(conv, to=up_to_seq)
        for low, high in ranges:
            for seq in range(max(low, conv.cursor + 1), high + 1):
                conv.held.pop(seq, None)
                conv.gone.add(seq)
        return released + self._advance(conv)

    def synced(self, conversation_id: str, *, messages: list[dict[str, Any]], first_seq: int,
               last_seq: int, has_more: bool) -> list[dict[str, Any]]:
        """One conversation of a `sync` reply: what the server still stores after the cursor the
        request sent, so any seq it leaves out up to what it covers is gone."""
        conv = self._conversation(conversation_id)
        released = self._advance(conv, to=first_seq - 1)
        fresh = {message["seq"] for message in messages if self._hold(conv, message)}
        stored = {message["seq"] for message in messages}
        covered = max(stored, default=conv.cursor) if has_more else last_seq
        return released + self._advance(conv, to=covered, keep=stored, fresh=fresh)

    def gaps_due(self, now: float) -> list[str]:
        """Conversations stuck behind a gap for `gap_hold_s`: the caller sends `sync` for them.
        Each is re-armed, so a sync that is lost or slow is asked for again."""
        self._now = max(self._now, now)
        due = [cid for cid, conv in self._conversations.items()
               if conv.waiting_since is not None and conv.waiting_since + self._gap_hold_s <= now]
        for cid in due:
            self._conversations[cid].waiting_since = now
        self.stats.gap_syncs += len(due)
        return due

    def next_deadline(self) -> float | None:
        starts = [conv.waiting_since for conv in self._conversations.values()
                  if conv.waiting_since is not None]
        return min(starts) + self._gap_hold_s if starts else None

    def acks_due(self) -> dict[str, int]:
        """Cursors that moved since last taken; an ack covers only what is held without a gap."""
        due = {cid: conv.cursor for cid, conv in self._conversations.items()
               if conv.cursor > conv.acked_cursor}
        for cid, seq in due.items():
            self._conversations[cid].acked_cursor = seq
        return due

    def _conversation(self, conversation_id: str) -> _Conversation:
        # An unknown conversation starts before seq 1: seq 1 releases at once, others wait.
        return self._conversations.setdefault(conversation_id, _Conversation())

    def _hold(self, conv: _Conversation, message: dict[str, Any]) -> bool:
        """Holds a message unless it is a duplicate (or its seq is gone); says which."""
        seq = message["seq"]
        if (message["message_id"] in self._seen or seq <= conv.cursor or seq in conv.held
                or seq in conv.gone):
            self.stats.duplicates += 1
            return False
        self._remember(message["message_id"])
        conv.held[seq] = message
        return True

    def _remember(self, message_id: str) -> None:
        self._seen[message_id] = None
        self._seen.move_to_end(message_id)
        while len(self._seen) > self._remembered_ids:
            self._seen.popitem(last=False)

    def _advance(self, conv: _Conversation, *, to: int | None = None,
                 keep: Collection[int] = (), fresh: Collection[int] = ()) -> list[dict[str, Any]]:
        """Moves the cursor to `to` (held messages up to it are released if in `keep`, else
        dropped), then on over every seq that is held or gone. Messages not in `fresh` waited."""
        before = conv.cursor
        released = []
        if to is not None and to > conv.cursor:
            for seq in sorted(held_seq for held_seq in conv.held if held_seq <= to):
                message = conv.held.pop(seq)
                if seq in keep:
                    released.append(message)
            conv.gone = {seq for seq in conv.gone if seq > to}
            conv.cursor = to
        while True:
            following = conv.cursor + 1
            if following in conv.held:
                released.append(conv.held.pop(following))
            elif following in conv.gone:
                conv.gone.discard(following)
            else:
                break
            conv.cursor = following
        self.stats.reordered += sum(1 for message in released if message["seq"] not in fresh)
        if not conv.held and not conv.gone:
            conv.waiting_since = None
        elif conv.waiting_since is None or conv.cursor != before:
            conv.waiting_since = self._now  # a new front gap: it gets its own hold
        return released
