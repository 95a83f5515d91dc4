"""`ephemera load`: open-loop load at a given rate over pairs of new users in 1:1 chats, and what
came of it: send→receive latency percentiles, losses and duplicates. bench/ladder.py climbs
rates with the same engine.

Every user is a `Client` in this one process: one send frame in flight per conversation (what
falls due meanwhile goes next as a batch), messages released in `seq` order, gaps held then
synced, acks coalesced. A message's latency runs from the moment it was due on the schedule to
its `Message` event at the partner, so queueing in the client counts."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ephemera_client.api import Api, outbox_codes
from ephemera_client.client import Client
from ephemera_client.errors import ClientError
from ephemera_client.events import Message, SendFailed, Sent
from ephemera_client.exits import FAILED, OK, RATE_LIMITED
from ephemera_client.session import MemorySession

DEFAULT_URL = "http://127.0.0.1:8000"
BODY_BYTES = 100  # each body differs: the server limits how often one sender repeats a body
DRAIN_TIMEOUT_S = 20.0  # after the schedule: for the last answers, pushes and the final sync
CONNECT_TIMEOUT_S = 30.0


class Window(Protocol):
    """Told when the measured window opens and closes (the ladder reads CPU then)."""

    def begin(self) -> None: ...

    def end(self) -> None: ...


class _CountingClient(Client):
    """A `Client` that counts `rate_limited` answers: its outbox waits them out and retries
    without an event, and a load run must say that it measured the limiter."""

    rate_limited = 0
    warned = False  # once a process

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "error" and frame.get("code") == "rate_limited":
            self.rate_limited += 1
            if not _CountingClient.warned:
                _CountingClient.warned = True
                print("ephemera load: warning: the server answers rate_limited, so this measures "
                      "its limiter: start it with the limits lifted (bench/stack.py "
                      "unlimited_rates_env)", file=sys.stderr)
        await super()._on_frame(frame)


@dataclass
class Pair:
    name: str
    sender: _CountingClient
    receiver: _CountingClient
    conversation_id: str
    seen_ids: set[str] = field(default_factory=set)  # message ids the receiver's caller got
    written: itertools.count = field(default_factory=itertools.count)


@dataclass
class _Round:
    """What every pair's events add to, for one rate."""

    number: int
    measured_from: float = float("inf")
    measured_until: float = float("inf")
    due_at: dict[str, float] = field(default_factory=dict)  # client_msg_id -> loop time
    written: dict[str, int] = field(default_factory=dict)  # client_msg_id -> order of writing
    answered: set[str] = field(default_factory=set)
    received: set[str] = field(default_factory=set)
    stored: list[tuple[str, int, int]] = field(default_factory=list)  # (conv, written, seq)
    frames: set[tuple[str, str]] = field(default_factory=set)  # (conv, req) answered
    latencies_ms: list[float] = field(default_factory=list)
    answered_in_window: int = 0
    errors: int = 0
    duplicated: int = 0

    def sent(self, event: Sent, now: float) -> None:
        if event.client_msg_id not in self.due_at or event.client_msg_id in self.answered:
            return
        self.answered.add(event.client_msg_id)
        self.frames.add((event.conversation_id, str(event.raw.get("req"))))
        self.stored.append((event.conversation_id, self.written[event.client_msg_id], event.seq))
        if self.measured_from <= now < self.measured_until:
            self.answered_in_window += 1

    def arrived(self, pair: Pair, message_id: str, client_msg_id: str, now: float) -> None:
        if message_id in pair.seen_ids:
            self.duplicated += 1
            return
        pair.seen_ids.add(message_id)
        due = self.due_at.get(client_msg_id)
        if due is None:
            return  # another round's, or another run's
        self.received.add(client_msg_id)
        if self.measured_from <= due < self.measured_until:
            self.latencies_ms.append((now - due) * 1000)


@dataclass
class RoundResult:
    rate: float
    pairs: int
    seconds: float
    warm_up_s: float
    due: int  # messages the schedule wrote
    sent: int  # of them, answered by `sent`
    received: int  # of them, received by the partner
    lost: int  # sent, never received
    duplicated: int  # a message id that reached a receiver's caller twice
    out_of_order: int  # messages the receivers' inboxes held for an earlier seq
    stored_out_of_order: int  # stored at a seq not above the one its sender wrote before it
    gap_syncs: int
    errors: int  # sends refused for good
    rate_limited: int  # `rate_limited` answers (waited out and retried)
    frames: int  # send frames answered (a batch is one)
    answered_in_window: int
    client_cpu_s: float  # this process's CPU over the measured window
    latencies_ms: list[float] = field(repr=False, default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Every figure but the samples, with the percentiles and the client's CPU cost."""
        figures = {k: v for k, v in asdict(self).items() if k != "latencies_ms"}
        per_message = (round(1000 * self.client_cpu_s / self.answered_in_window, 3)
                       if self.answered_in_window else None)
        return {**figures, "client_cpu_s": round(self.client_cpu_s, 3),
                **latency_percentiles(self.latencies_ms),
                "client_cpu_ms_per_msg": per_message,
                "client_cpu_per_s": round(self.client_cpu_s / self.seconds, 3)}


def latency_percentiles(samples_ms: Sequence[float]) -> dict[str, Any]:
    """Nearest-rank p50/p95/p99 and the max, in ms to 0.1 (None for each when no sample)."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {"samples": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))], 1)

    return {"samples": len(ordered), "p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1], 1)}


class LoadPairs:
    """`count` pairs of new users (local stage: codes from /dev/outbox), each pair in a 1:1
    chat, each user a connected `Client`. Use `async with LoadPairs(url, count) as pairs`."""

    def __init__(self, url: str, count: int) -> None:
        self.url, self.count = url, count
        self.pairs: list[Pair] = []
        self.clients: list[_CountingClient] = []
        self.round = _Round(0)
        self._readers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> LoadPairs:
        phones = [f"+1415555{n:04d}" for n in random.sample(range(10_000), 2 * self.count)]
        self.clients = [_CountingClient(self.url, api=Api(self.url, session=MemorySession()))
                        for _ in phones]
        clients = self.clients
        try:
            signed_in = await asyncio.gather(
                *(c.api.login(phone, outbox_codes(c.api), device_name="ephemera-load")
                  for c, phone in zip(clients, phones, strict=True)), return_exceptions=True)
            for outcome in signed_in:
                if isinstance(outcome, BaseException):
                    raise outcome
            for i in range(self.count):
                sender, receiver = clients[2 * i], clients[2 * i + 1]
                chat = await sender.api.create_conversation([phones[2 * i + 1]])
                self.pairs.append(Pair(f"p{i}", sender, receiver, chat["id"]))
            await asyncio.gather(*(c.connect(timeout_s=CONNECT_TIMEOUT_S) for c in clients))
        except BaseException:
            await self.close()
            raise
        self._readers = [asyncio.create_task(self._read(pair, client)) for pair in self.pairs
                         for client in (pair.sender, pair.receiver)]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def rate_limited(self) -> int:
        return sum(c.rate_limited for c in self.clients)

    async def _read(self, pair: Pair, client: Client) -> None:
        loop = asyncio.get_running_loop()
        async for event in client.events():
            if isinstance(event, Message) and client is pair.receiver:
                self.round.arrived(pair, event.message_id, event.client_msg_id, loop.time())
            elif isinstance(event, Sent):
                self.round.sent(event, loop.time())
            elif isinstance(event, SendFailed):
                self.round.errors += 1

    async def final_sync(self, pair: Pair) -> None:
        """Asks the server what the receiver still misses; the inbox releases it once."""
        receiver, more = pair.receiver, True
        while more:
            try:
                reply = await receiver.request({"action": "sync",
                                                "cursors": receiver.inbox.cursors()})
            except ClientError:
                return  # the link is down: what this receiver misses counts as lost
            released, more = receiver.apply_sync_reply(reply)
            now = asyncio.get_running_loop().time()
            for message in released:
                self.round.arrived(pair, message["message_id"], message["client_msg_id"], now)


async def run_round(load: LoadPairs, rate: float, seconds: float, warm_up_s: float,
                    window: Window | None = None) -> RoundResult:
    """`rate` messages a second over all pairs, open loop, for `warm_up_s` + `seconds`; then
    a drain and a final sync. Latencies are those of messages due in the measured window."""
    loop = asyncio.get_running_loop()
    pairs = load.pairs
    shared = load.round = _Round(load.round.number + 1)
    gap_syncs = sum(p.receiver.inbox.stats.gap_syncs for p in pairs)
    reordered = sum(p.receiver.inbox.stats.reordered for p in pairs)
    limited = load.rate_limited()
    total = len(pairs) * int((warm_up_s + seconds) * rate / len(pairs))
    start = loop.time() + 0.1
    shared.measured_from, shared.measured_until = start + warm_up_s, start + warm_up_s + seconds
    cpu = asyncio.create_task(_measure(shared, window))
    for j in range(total):
        due = start + j / rate
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        pair = pairs[j % len(pairs)]
        written = next(pair.written)
        client_msg_id = f"{pair.name}-{written:08d}"
        shared.due_at[client_msg_id], shared.written[client_msg_id] = due, written
        body = f"{client_msg_id} ".ljust(BODY_BYTES, "m")
        pair.sender.send(pair.conversation_id, body, client_msg_id=client_msg_id)
    client_cpu_s = await cpu
    await _drain(load, shared)
    return RoundResult(
        rate=rate, pairs=len(pairs), seconds=seconds, warm_up_s=warm_up_s, due=total,
        sent=len(shared.answered), received=len(shared.received & shared.answered),
        lost=len(shared.answered - shared.received), duplicated=shared.duplicated,
        out_of_order=sum(p.receiver.inbox.stats.reordered for p in pairs) - reordered,
        stored_out_of_order=_stored_out_of_order(shared.stored),
        gap_syncs=sum(p.receiver.inbox.stats.gap_syncs for p in pairs) - gap_syncs,
        errors=shared.errors, rate_limited=load.rate_limited() - limited,
        frames=len(shared.frames), answered_in_window=shared.answered_in_window,
        client_cpu_s=client_cpu_s, latencies_ms=shared.latencies_ms)


async def _measure(shared: _Round, window: Window | None) -> float:
    """This process's CPU seconds over the measured window (and the caller's window hooks)."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, shared.measured_from - loop.time()))
    if window is not None:
        window.begin()
    used = -time.process_time()
    await asyncio.sleep(max(0.0, shared.measured_until - loop.time()))
    used += time.process_time()
    if window is not None:
        window.end()
    return used


async def _drain(load: LoadPairs, shared: _Round) -> None:
    """Waits for the last answers and pushes, then one final sync per receiver fetches what
    never came; whatever still misses after that is lost."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_TIMEOUT_S
    while loop.time() < deadline and not (all(len(p.sender.outbox) == 0 for p in load.pairs)
                                          and shared.answered <= shared.received):
        await asyncio.sleep(0.05)
    try:
        async with asyncio.timeout(max(1.0, deadline - loop.time())):
            await asyncio.gather(*(load.final_sync(pair) for pair in load.pairs))
    except TimeoutError:
        pass  # what did not come counts as lost


def _stored_out_of_order(stored: list[tuple[str, int, int]]) -> int:
    """Messages stored at a seq not above that of the one their sender wrote before them."""
    by_conversation: dict[str, list[tuple[int, int]]] = {}
    for conversation_id, written, seq in stored:
        by_conversation.setdefault(conversation_id, []).append((written, seq))
    return sum(1 for entries in by_conversation.values()
               for before, after in itertools.pairwise(seq for _, seq in sorted(entries))
               if after <= before)


# --- the command ----------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction) -> None:
    text = ("open-loop load on a local stack: RATE msg/s over PAIRS new pairs of users, then "
            "p50/p95/p99 send→receive, losses and duplicates (exit 1 if any)")
    parser = commands.add_parser("load", help=text, description=text)
    parser.set_defaults(run=run_load)
    parser.add_argument("--rate", type=_positive(float), default=50.0,
                        help="messages a second over all pairs (default 50)")
    parser.add_argument("--pairs", type=_positive(int), default=5, help="default 5")
    parser.add_argument("--seconds", type=_positive(float), default=10.0,
                        help="the measured window (default 10)")
    parser.add_argument("--warm-up", type=float, default=2.0, metavar="SECONDS",
                        help="sent before the window, not measured (default 2)")
    parser.add_argument("--json", action="store_true", help="one JSON object")


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError("must be above 0")
        return value

    return parse


async def run_load(args: argparse.Namespace) -> int:
    url = getattr(args, "url", None) or os.environ.get("EPHEMERA_URL") or DEFAULT_URL
    async with LoadPairs(url, args.pairs) as load:
        result = await run_round(load, args.rate, args.seconds, max(0.0, args.warm_up))
    summary = {"url": url, **result.summary()}
    print(json.dumps(summary) if args.json else "\n".join(table_lines(summary)))
    if result.lost or result.duplicated:
        return FAILED
    if result.sent < result.due:
        return RATE_LIMITED if result.rate_limited else FAILED
    return OK


def table_lines(s: dict[str, Any]) -> list[str]:
    def ms(key: str) -> str:
        return "-" if s[key] is None else f"{s[key]:.{3 if 'cpu' in key else 1}f} ms"

    return [
        f"load on {s['url']}: {s['rate']:g} msg/s over {s['pairs']} pairs, {s['seconds']:g} s "
        f"measured after {s['warm_up_s']:g} s warm-up",
        f"  sent        {s['sent']} of {s['due']} due, in {s['frames']} frames",
        f"  received    {s['received']}",
        f"  lost        {s['lost']}",
        f"  duplicated  {s['duplicated']}",
        f"  latency     p50 {ms('p50_ms')}  p95 {ms('p95_ms')}  p99 {ms('p99_ms')}  "
        f"max {ms('max_ms')}  ({s['samples']} due in the window, due→received)",
        f"  order       {s['out_of_order']} held for an earlier seq, {s['gap_syncs']} gap "
        f"syncs, {s['stored_out_of_order']} stored out of order",
        f"  refused     {s['errors']} for good, {s['rate_limited']} rate limited",
        f"  client CPU  {ms('client_cpu_ms_per_msg')} per message sent in the window, "
        f"{100 * s['client_cpu_per_s']:.0f}% of a core",
    ]
