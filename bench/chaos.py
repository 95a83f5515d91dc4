"""The chaos run: exactly once and in order, under every fault the local stack can stage.

Six users (two of them with a phone and a laptop) talk in 1:1 chats and groups, one group with a
ten-second TTL, every device a `Client` of the Python library in this one process, on MariaDB,
limits lifted. Meanwhile a `random.Random(seed)` decides, every second or so, to:

- cut a device's sockets just after it wrote a burst (`DELETE /local/@connections/{id}`);
- send one message twice at once, from the device's client and from a second raw socket of the
  same device, with the same `client_msg_id`;
- `KILL` the stack's MySQL connections from an admin connection;
- make pushes fail: 410 GoneException, or a delay past the push adapter's read timeout (the
  late push is still delivered, so its retry delivers the frame twice) (`POST /local/@faults`);
- and, once, restart the stack on the same port and database.

The short-TTL group is only written to early, so it expires underneath (the stack's cleanup runs
every second). Then the faults stop, every outbox drains, every device syncs once more, and the
guarantees are checked against what the clients saw and what the database holds:
every unexpired message reaches every other device of its conversation exactly once, in `seq`
order; each device's messages to a conversation are stored in the order it wrote them; no
`client_msg_id` is stored twice; every message written got its `sent`; nothing expired is
readable. `--seed` replays a run's plan of faults and what it writes (not the timing of a real
network and scheduler, which is why the run is worth repeating); a failed run names the stack's
logs.

    python -m bench.chaos --seed 7 --seconds 120 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pymysql

from bench.stack import unlimited_rates_env
from bench.storage import mysql_database
from chalicelib.config import parse_database_url
from ephemera_client.api import Api, outbox_codes
from ephemera_client.client import Client, Timing
from ephemera_client.errors import ClientError
from ephemera_client.events import Expired, Message, SendFailed, Sent
from ephemera_client.session import MemorySession
from tests.e2e.conftest import RunningStack

USERS = 6
TWO_DEVICES = (0, 1)  # these users have a phone and a laptop
DIRECT = [(0, 1), (0, 2), (1, 3), (2, 3), (4, 5), (1, 5)]
GROUPS = [(0, 1, 2, 3), (2, 3, 4, 5), (0, 1, 2, 3, 4, 5)]
SHORT_TTL_GROUP = (0, 1, 2)
SHORT_TTL_S = 10  # PROTOCOL's shortest
SHORT_TTL_WRITES_UNTIL = 0.25  # of the run: its messages are all gone before the end
EXPIRY_INTERVAL_S = 1
RATE = 30.0  # messages written a second, over every device
BURST = 5  # messages written just before a cut
PUSH_READ_TIMEOUT_MS = 3000  # chalicelib/adapters/push.py RetryPolicy.read_timeout_s
DRAIN_TIMEOUT_S = 90.0
LATE_READ_S = 1.0  # a message surfaced this long after its expiry was readable when expired
# Quick to notice a dead link and come back; pings every 5 s find a socket the server forgot.
TIMING = Timing(ping_every_s=5.0, answer_timeout_s=10.0, max_backoff_s=2.0, coalesce_s=0.5)
FAULTS = {"cut": 3, "double_send": 3, "kill_mysql": 2, "push_410": 2, "push_timeout": 2}


class ChaosClient(Client):
    """A client that says where each message came from: a live push or a `sync` reply."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.via_sync: set[str] = set()

    def apply_sync_reply(self, frame: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        released, again = super().apply_sync_reply(frame)
        synced = {m["message_id"] for e in frame.get("conversations", [])
                  for m in e.get("messages", [])}
        self.via_sync.update(m["message_id"] for m in released if m["message_id"] in synced)
        return released, again


@dataclass
class Received:
    message_id: str
    conversation_id: str
    seq: int
    sender_device_id: str
    expires_at: int
    at_ms: int  # when it surfaced, by this machine's clock (the server's too)
    via_sync: bool


@dataclass
class Device:
    name: str
    user: int
    phone: str
    client: ChaosClient
    conversations: list[str] = field(default_factory=list)
    written: dict[str, list[str]] = field(default_factory=dict)  # conv -> client_msg_ids in order
    received: list[Received] = field(default_factory=list)
    sent: dict[str, Sent] = field(default_factory=dict)  # client_msg_id -> its first `sent`
    duplicate_sents: int = 0
    failed: list[SendFailed] = field(default_factory=list)
    expired_frames: int = 0
    counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def device_id(self) -> str:
        return self.client.device_id

    def surfaced(self, message: dict[str, Any] | Message, via_sync: bool) -> None:
        get = message.get if isinstance(message, dict) else lambda k: getattr(message, k)
        self.received.append(Received(get("message_id"), get("conversation_id"), get("seq"),
                                      get("sender_device_id"), get("expires_at"),
                                      int(time.time() * 1000), via_sync))


@dataclass
class Tally:
    cuts: int = 0
    sockets_cut: int = 0
    double_sends: int = 0
    double_sends_answered: int = 0
    kills: int = 0
    mysql_connections_killed: int = 0
    push_410: int = 0
    push_timeouts: int = 0
    restarts: int = 0
    restart_s: float = 0.0  # from the stop to the new stack's health check
    double_send_ids: dict[str, str] = field(default_factory=dict)  # client_msg_id -> message_id
    double_send_refusals: list[str] = field(default_factory=list)  # codes the second socket got


class Chaos:
    def __init__(self, stack: RunningStack, database_url: str, seed: int, seconds: float,
                 rate: float) -> None:
        self.stack, self.seed, self.seconds, self.rate = stack, seed, seconds, rate
        # One stream per concern, so the plan of faults is the seed's alone: how long a restart
        # takes or how many sockets a device holds changes the draws of the others, not it.
        self.plan_rng, self.write_rng, self.rng = (random.Random(f"{seed}:{concern}")
                                                   for concern in ("plan", "write", "act"))
        self.database_url = database_url
        settings = parse_database_url(database_url)
        self.database_name = settings.name
        self.admin = pymysql.connect(host=settings.host, port=settings.port, user=settings.user,
                                     password=settings.password or "", database=settings.name,
                                     autocommit=True, cursorclass=pymysql.cursors.DictCursor)
        self.devices: list[Device] = []
        self.conversations: dict[str, tuple[int, ...]] = {}  # id -> member users
        self.short_ttl_id = ""
        self.tally = Tally()
        self.readers: list[asyncio.Task[None]] = []
        self.background: set[asyncio.Task[None]] = set()
        self.http: aiohttp.ClientSession | None = None
        self.started = 0.0
        self.stack_logs = [str(stack.log_path)]  # each stack's output, for a failed run

    # --- the world -----------------------------------------------------------------------------

    async def set_up(self) -> None:
        self.http = aiohttp.ClientSession()
        phones = [f"+1415555{300 + n:04d}" for n in range(USERS)]
        for user, phone in enumerate(phones):
            for kind in ("phone", "laptop") if user in TWO_DEVICES else ("phone",):
                api = Api(self.stack.base_url, session=MemorySession())
                client = ChaosClient(self.stack.base_url, api=api, timing=TIMING)
                self.devices.append(Device(f"u{user}-{kind}", user, phone, client))
        await asyncio.gather(*(self._sign_in(phone) for phone in phones))
        first = {d.user: d for d in reversed(self.devices)}  # each user's phone
        worlds: list[tuple[tuple[int, ...], int | None]] = [(m, None) for m in DIRECT + GROUPS]
        worlds.append((SHORT_TTL_GROUP, SHORT_TTL_S))
        chats = await asyncio.gather(*(first[members[0]].client.api.create_conversation(
            [phones[m] for m in members[1:]], ttl_seconds=ttl,
            title=None if len(members) == 2 else f"chaos {n}")
            for n, (members, ttl) in enumerate(worlds)))
        for chat, (members, ttl) in zip(chats, worlds, strict=True):
            self.conversations[chat["id"]] = members
            if ttl is not None:
                self.short_ttl_id = chat["id"]
        await asyncio.gather(*(first[member].client.api.accept(chat["id"])
                               for chat, (members, _) in zip(chats, worlds, strict=True)
                               for member in members[1:]))
        for device in self.devices:
            device.conversations = [cid for cid, members in self.conversations.items()
                                    if device.user in members]
        await asyncio.gather(*(d.client.connect() for d in self.devices))
        self.readers = [asyncio.create_task(self._read(d)) for d in self.devices]

    async def _sign_in(self, phone: str) -> None:
        """The phone's devices one after the other: each reads the newest code texted to it."""
        for device in (d for d in self.devices if d.phone == phone):
            await device.client.api.login(phone, outbox_codes(device.client.api),
                                          device_name=f"chaos {device.name}")

    async def _read(self, device: Device) -> None:
        async for event in device.client.events():
            if isinstance(event, Message):
                device.surfaced(event, event.message_id in device.client.via_sync)
            elif isinstance(event, Sent):
                if event.duplicate:
                    device.duplicate_sents += 1
                device.sent.setdefault(event.client_msg_id, event)
            elif isinstance(event, SendFailed):
                device.failed.append(event)
            elif isinstance(event, Expired):
                device.expired_frames += 1

    async def close(self) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await asyncio.gather(*(d.client.close() for d in self.devices), return_exceptions=True)
        await asyncio.gather(*self.readers, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
        self.admin.close()

    # --- the run -------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def fault_clock(self) -> float:
        """The faults' time: it stands still while the stack restarts (writing goes on)."""
        return self.elapsed() - self.tally.restart_s

    async def run(self) -> None:
        self.started = time.monotonic()
        await asyncio.gather(self._write(), self._stage_faults())
        await self.clear_faults()

    async def _write(self) -> None:
        """Messages at `rate` a second from random devices to random conversations of theirs."""
        for n in itertools.count():
            due = n / self.rate
            if due >= self.seconds:
                return
            await asyncio.sleep(max(0.0, due - self.elapsed()))
            device = self.write_rng.choice(self.devices)
            self.write(device, self.write_rng.choice(self._writable(device)))

    def _writable(self, device: Device) -> list[str]:
        if self.elapsed() < SHORT_TTL_WRITES_UNTIL * self.seconds:
            return device.conversations
        return [c for c in device.conversations if c != self.short_ttl_id]

    def write(self, device: Device, conversation_id: str,
              client_msg_id: str | None = None) -> str:
        number = next(device.counter)
        body = f"{device.name} #{number} " + "x" * (number * 37 % 200)  # sizes vary, no draw
        pending = device.client.send(conversation_id, body, client_msg_id=client_msg_id)
        device.written.setdefault(conversation_id, []).append(pending.client_msg_id)
        return body

    def fault_plan(self) -> list[tuple[float, str, int]]:
        """(when, what, which device): a fault every 0.3 to 1.5 s, the restart once, midway."""
        kinds, weights = list(FAULTS), list(FAULTS.values())
        restart_at = self.seconds * self.plan_rng.uniform(0.4, 0.6)
        plan, at = [], 0.0
        while (at := at + self.plan_rng.uniform(0.3, 1.5)) < self.seconds - 2:
            restarted = any(kind == "restart" for _, kind, _ in plan)
            kind = "restart" if not restarted and at >= restart_at else \
                self.plan_rng.choices(kinds, weights)[0]
            plan.append((at, kind, self.plan_rng.randrange(len(self.devices))))
        return plan

    async def _stage_faults(self) -> None:
        for at, kind, device in self.fault_plan():
            await asyncio.sleep(max(0.0, at - self.fault_clock()))
            await getattr(self, kind)(self.devices[device])

    def connection_ids(self, device: Device) -> list[str]:
        with self.admin.cursor() as cur:
            cur.execute("SELECT id FROM connections WHERE device_id = %s", (device.device_id,))
            return [row["id"] for row in cur.fetchall()]

    async def cut(self, device: Device) -> None:
        """A burst written, then the device's sockets cut while it is on the wire."""
        for _ in range(BURST):
            self.write(device, self.rng.choice(self._writable(device)))
        await asyncio.sleep(self.rng.uniform(0, 0.05))
        self.tally.cuts += 1
        for connection_id in self.connection_ids(device):
            async with self._http().delete(
                    f"{self.stack.base_url}/local/@connections/{connection_id}") as reply:
                self.tally.sockets_cut += reply.status == 204

    async def double_send(self, device: Device) -> None:
        """One message sent at once by the device's client and by a second socket of the same
        device with the same client_msg_id: what a device does that gave up on a socket that is
        still being served and sends again on a new one. Half the time the client's copy goes
        in a batch with the next message, as a retry does when more was written meanwhile."""
        try:
            ticket = await device.client.api.ticket()
        except ClientError:
            return  # the stack is down
        task = asyncio.create_task(self._double_send_on(device, ticket))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _double_send_on(self, device: Device, ticket: dict[str, Any]) -> None:
        """The second socket: once open, the message is written to the client and sent on it in
        the same instant, again until a `sent` answers (or a cut or the restart ends it); the
        message id it is given must be the one the client's copy gets."""
        deadline = time.monotonic() + 20
        try:
            async with self._http().ws_connect(f"{ticket['url']}?ticket={ticket['ticket']}") \
                    as socket:
                frame = self._write_twice(device)
                if frame is None:
                    return
                await socket.send_str(json.dumps(frame))
                while time.monotonic() < deadline:
                    raw = await socket.receive(timeout=deadline - time.monotonic())
                    if raw.type != aiohttp.WSMsgType.TEXT:
                        return
                    reply = json.loads(raw.data)
                    if reply.get("req") != "double":
                        continue
                    if reply.get("type") == "sent":
                        self.tally.double_sends_answered += 1
                        self.tally.double_send_ids[frame["client_msg_id"]] = reply["message_id"]
                        return
                    if reply.get("code") == "unauthorized":
                        return  # a 410 fault made the server forget this socket: it is lost
                    if reply.get("code") not in ("internal", "rate_limited"):
                        self.tally.double_send_refusals.append(str(reply.get("code")))
                        return
                    await asyncio.sleep(0.5)
                    await socket.send_str(json.dumps(frame))
        except (aiohttp.ClientError, TimeoutError, ConnectionError):
            return

    def _write_twice(self, device: Device) -> dict[str, Any] | None:
        """Writes the message (and maybe the next) to the client; the raw socket's frame. Only
        in a conversation with nothing waiting: the copy must not overtake an earlier message
        the client has in flight."""
        idle = [c for c in self._writable(device) if not device.client.outbox.pending(c)]
        if not idle:
            return None
        conversation_id = self.rng.choice(idle)
        client_msg_id = f"dbl-{secrets.token_hex(8)}"
        body = self.write(device, conversation_id, client_msg_id)
        if self.rng.random() < 0.5:
            self.write(device, conversation_id)
        self.tally.double_sends += 1
        return {"action": "send", "req": "double", "conversation_id": conversation_id,
                "client_msg_id": client_msg_id, "body": body}

    async def kill_mysql(self, _device: Device) -> None:
        """KILL some of the stack's connections to MariaDB, mid-transaction or idle."""
        with self.admin.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.processlist "
                        "WHERE db = %s AND id <> CONNECTION_ID()", (self.database_name,))
            ids = [row["id"] for row in cur.fetchall()]
            victims = self.rng.sample(ids, self.rng.randint(1, len(ids))) if ids else []
            for thread_id in victims:
                try:
                    cur.execute("KILL %s", (thread_id,))
                    self.tally.mysql_connections_killed += 1
                except pymysql.err.OperationalError:
                    pass  # gone already
        self.tally.kills += 1

    async def push_410(self, device: Device) -> None:
        """The next pushes to one of the device's sockets (or to anyone) answer 410 Gone."""
        await self._fault(device, {"status": 410, "times": self.rng.randint(1, 3)})
        self.tally.push_410 += 1

    async def push_timeout(self, device: Device) -> None:
        """The next pushes wait past the adapter's read timeout, then are delivered anyway."""
        delay_ms = self.rng.randint(PUSH_READ_TIMEOUT_MS + 200, PUSH_READ_TIMEOUT_MS + 2500)
        await self._fault(device, {"status": None, "delay_ms": delay_ms,
                                   "times": self.rng.randint(1, 2)})
        self.tally.push_timeouts += 1

    async def _fault(self, device: Device, fault: dict[str, Any]) -> None:
        ids = self.connection_ids(device)
        if ids and self.rng.random() < 0.8:
            fault["connection_id"] = self.rng.choice(ids)
        async with self._http().post(f"{self.stack.base_url}/local/@faults", json=fault) as reply:
            assert reply.status == 204, await reply.text()

    async def clear_faults(self) -> None:
        async with self._http().delete(f"{self.stack.base_url}/local/@faults") as reply:
            assert reply.status == 204

    async def restart(self, _device: Device) -> None:
        """Stops the stack and starts it again on the same port and database: every client
        loses its socket and its tickets fail until it is back."""
        self.tally.restarts += 1
        old, began = self.stack, time.monotonic()
        self.stack = await asyncio.to_thread(old.restarted)
        self.tally.restart_s = round(time.monotonic() - began, 1)
        self.stack_logs.append(str(self.stack.log_path))

    def _http(self) -> aiohttp.ClientSession:
        assert self.http is not None
        return self.http

    # --- the end -------------------------------------------------------------------------------

    async def drain(self) -> None:
        """Every outbox empty, then one more sync per device; and time for the short-TTL
        group's messages to expire and be cleaned up."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and any(len(d.client.outbox) for d in self.devices):
            await asyncio.sleep(0.1)
        expire_by = self._short_ttl_cleaned_by()
        await asyncio.sleep(max(0.0, expire_by - time.time()))
        for device in self.devices:
            await self.final_sync(device, deadline)
        await asyncio.sleep(0.5)  # a late push after the sync is a duplicate: let it show

    def _short_ttl_cleaned_by(self) -> float:
        stamps = [s.expires_at for d in self.devices for s in d.sent.values()
                  if s.conversation_id == self.short_ttl_id]
        return max(stamps, default=0) / 1000 + 2 * EXPIRY_INTERVAL_S + 1

    async def final_sync(self, device: Device, deadline: float) -> None:
        client, more = device.client, True
        while more:
            try:
                reply = await client.request({"action": "sync", "cursors": client.inbox.cursors()})
            except ClientError:
                if time.monotonic() > deadline:
                    return  # what it misses counts as lost
                await asyncio.sleep(0.5)
                continue
            released, more = client.apply_sync_reply(reply)
            for message in released:
                device.surfaced(message, via_sync=True)

    def database_rows(self) -> list[dict[str, Any]]:
        ids = list(self.conversations)
        marks = ", ".join(["%s"] * len(ids))
        with self.admin.cursor() as cur:
            cur.execute(f"SELECT id, conversation_id, seq, sender_id, sender_device_id, "  # noqa: S608 - placeholders only
                        f"client_msg_id, expires_at FROM messages "
                        f"WHERE conversation_id IN ({marks})", ids)
            return list(cur.fetchall())

    async def short_ttl_history(self) -> list[dict[str, Any]]:
        reader = next(d for d in self.devices if d.user == SHORT_TTL_GROUP[0])
        reply = await reader.client.api.history(self.short_ttl_id, limit=100)
        return reply["messages"]


# --- the verdict -------------------------------------------------------------------------------


def check(chaos: Chaos, rows: list[dict[str, Any]], short_ttl_history: list[dict[str, Any]],
          ) -> tuple[dict[str, Any], list[str]]:
    """The counts, and every broken guarantee in words (none: the run passed)."""
    problems: list[str] = []
    devices = chaos.devices
    by_id = {row["id"]: row for row in rows}
    copies = Counter((row["sender_id"], row["client_msg_id"]) for row in rows)
    problems += [f"stored {n} times: {key[1]}" for key, n in copies.items() if n > 1]
    stored = {(row["sender_device_id"], row["client_msg_id"]): row for row in rows}
    now_ms = int(time.time() * 1000)
    written_total = 0
    for device in devices:
        problems += [f"{device.name}: refused for good ({f.code}): {f.client_msg_id}"
                     for f in device.failed]
        if len(device.client.outbox):  # the rest of its "no sent" problems say which
            problems.append(f"{device.name}: {len(device.client.outbox)} messages still in the "
                            f"outbox after the drain ({device.client.reconnects} reconnects)")
        for conversation_id, written in device.written.items():
            written_total += len(written)
            problems += [f"{device.name}: no sent for {cmid}" for cmid in written
                         if cmid not in device.sent]
            if conversation_id == chaos.short_ttl_id:
                continue
            seqs = []
            for cmid in written:
                row = stored.get((device.device_id, cmid))
                if row is None:
                    problems.append(f"{device.name}: never stored: {cmid}")
                    continue
                seqs.append(row["seq"])
                sent = device.sent.get(cmid)
                if sent is not None and (sent.message_id, sent.seq) != (row["id"], row["seq"]):
                    problems.append(f"{device.name}: sent says {sent.seq}, stored at {row['seq']}")
            problems += [f"{device.name}: stored out of the order written in {conversation_id}: "
                         f"seq {b} after {a}" for a, b in itertools.pairwise(seqs) if b <= a]
        problems += _received_problems(chaos, device, by_id, now_ms)
    for cmid, message_id in chaos.tally.double_send_ids.items():
        mine = next((d.sent[cmid] for d in devices if cmid in d.sent), None)
        if mine is not None and mine.message_id != message_id:
            problems.append(f"two sockets got two messages for {cmid}")
    problems += [f"the second socket's copy was refused: {code}"
                 for code in chaos.tally.double_send_refusals]
    leftovers = [row for row in rows if row["conversation_id"] == chaos.short_ttl_id]
    if leftovers or short_ttl_history:
        problems.append(f"expired yet readable: {len(leftovers)} rows, "
                        f"{len(short_ttl_history)} in history")
    counts = _counts(chaos, rows, written_total, problems)
    return counts, problems


def _received_problems(chaos: Chaos, device: Device, by_id: dict[str, dict[str, Any]],
                       now_ms: int) -> list[str]:
    """Each message at most once, in seq order per conversation, none surfaced long after its
    expiry, and every unexpired one from another device of its conversation held."""
    problems = []
    seen = Counter(r.message_id for r in device.received)
    problems += [f"{device.name}: got {message_id} {n} times" for message_id, n in seen.items()
                 if n > 1]
    last_seq: dict[str, int] = {}
    for r in device.received:
        if r.seq <= last_seq.get(r.conversation_id, 0):
            problems.append(f"{device.name}: seq {r.seq} after {last_seq[r.conversation_id]}")
        last_seq[r.conversation_id] = max(r.seq, last_seq.get(r.conversation_id, 0))
        if r.at_ms > r.expires_at + LATE_READ_S * 1000:
            problems.append(f"{device.name}: surfaced {r.message_id} after it expired")
    held = set(seen)
    problems += [f"{device.name}: got {r.message_id}, which was never stored"
                 for r in device.received
                 if r.message_id not in by_id and r.conversation_id != chaos.short_ttl_id]
    for message_id, row in by_id.items():
        if (row["conversation_id"] in device.conversations and row["expires_at"] > now_ms
                and row["sender_device_id"] != device.device_id and message_id not in held):
            problems.append(f"{device.name}: lost {message_id} (seq {row['seq']})")
    return problems


def _counts(chaos: Chaos, rows: list[dict[str, Any]], written: int,
            problems: list[str]) -> dict[str, Any]:
    devices, tally = chaos.devices, chaos.tally
    received = [r for d in devices for r in d.received]
    return {
        "seed": chaos.seed, "seconds": chaos.seconds, "devices": len(devices),
        "conversations": len(chaos.conversations),
        "written": written, "sent": sum(len(d.sent) for d in devices),
        "stored": len(rows),
        "delivered_live": sum(not r.via_sync for r in received),
        "recovered_by_sync": sum(r.via_sync for r in received),
        "duplicates_suppressed": sum(d.client.inbox.stats.duplicates for d in devices),
        "duplicate_sends_answered": sum(d.duplicate_sents for d in devices),
        "reordered_and_fixed": sum(d.client.inbox.stats.reordered for d in devices),
        "gap_syncs": sum(d.client.inbox.stats.gap_syncs for d in devices),
        "lost": sum(1 for p in problems if ": lost " in p),
        "expired_frames": sum(d.expired_frames for d in devices),
        "short_ttl_sent": sum(1 for d in devices for s in d.sent.values()
                              if s.conversation_id == chaos.short_ttl_id),
        "reconnects": sum(d.client.reconnects for d in devices),
        "cuts": tally.cuts, "sockets_cut": tally.sockets_cut,
        "double_sends": tally.double_sends,
        "double_sends_answered": tally.double_sends_answered,
        "mysql_kills": tally.kills, "mysql_connections_killed": tally.mysql_connections_killed,
        "push_410_faults": tally.push_410, "push_timeout_faults": tally.push_timeouts,
        "restarts": tally.restarts, "restart_s": tally.restart_s, "problems": len(problems),
    }


# --- running it --------------------------------------------------------------------------------


def stack_env() -> dict[str, str]:
    return {"POWERTOOLS_LOG_LEVEL": "WARNING", "EXPIRY_INTERVAL_S": str(EXPIRY_INTERVAL_S),
            "LOCAL_WORKERS": os.environ.get("LOCAL_WORKERS", "4"), **unlimited_rates_env()}


async def _chaos_on(database_url: str, seed: int, seconds: float, rate: float,
                    ) -> tuple[dict[str, Any], list[str], RunningStack]:
    phases: dict[str, float] = {}
    began = time.monotonic()

    def lap(name: str) -> None:
        nonlocal began
        phases[f"{name}_s"] = round(time.monotonic() - began, 1)
        began = time.monotonic()

    stack = RunningStack({"DATABASE_URL": database_url, **stack_env()})
    chaos = None
    try:
        await asyncio.to_thread(stack.wait_until_ready)
        chaos = Chaos(stack, database_url, seed, seconds, rate)
        await chaos.set_up()
        lap("setup")
        await chaos.run()
        lap("faults")
        await chaos.drain()
        lap("drain")
        rows = chaos.database_rows()
        history = await chaos.short_ttl_history()
        counts, problems = check(chaos, rows, history)
        return {**counts, **phases, "stack_logs": chaos.stack_logs}, problems, chaos.stack
    finally:
        if chaos is not None:
            await chaos.close()
            stack = chaos.stack
        await asyncio.to_thread(stack.stop)


def run_chaos(database_url: str, seed: int, seconds: float, rate: float = RATE,
              ) -> tuple[dict[str, Any], list[str]]:
    """One chaos run on a migrated (or empty) MariaDB database: its counts and its problems."""
    counts, problems, _stack = asyncio.run(_chaos_on(database_url, seed, seconds, rate))
    return counts, problems


TABLE = [("written", "messages written"), ("sent", "answered by sent"),
         ("stored", "rows in the database"),
         ("delivered_live", "delivered live"), ("recovered_by_sync", "recovered by sync"),
         ("duplicates_suppressed", "duplicates suppressed (inbox)"),
         ("duplicate_sends_answered", "retries answered duplicate"),
         ("reordered_and_fixed", "reordered and fixed"), ("gap_syncs", "gap syncs"),
         ("lost", "lost"), ("short_ttl_sent", "expired underneath"),
         ("expired_frames", "expired frames received"), ("reconnects", "reconnects"),
         ("cuts", "cuts"), ("sockets_cut", "sockets cut"), ("double_sends", "double sends"),
         ("double_sends_answered", "second sockets answered"),
         ("mysql_kills", "KILL rounds"), ("mysql_connections_killed", "MySQL connections killed"),
         ("push_410_faults", "push 410 faults"), ("push_timeout_faults", "push timeout faults"),
         ("restarts", "stack restarts"),
         ("restart_s", "restart took (s)"), ("problems", "broken guarantees"),
         ("setup_s", "setup (s)"), ("faults_s", "faults (s)"), ("drain_s", "drain and sync (s)")]


def table(counts: dict[str, Any]) -> str:
    lines = [f"chaos: seed {counts['seed']}, {counts['seconds']:g} s of faults, "
             f"{counts['devices']} devices in {counts['conversations']} conversations, MariaDB"]
    width = max(len(label) for _, label in TABLE)
    lines += [f"  {label.ljust(width)}  {counts[key]}" for key, label in TABLE]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Table and JSON line (`--json`: the JSON line alone); exit 1 if a guarantee broke."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--seconds", type=float, default=120.0, help="of faults (default 120)")
    parser.add_argument("--rate", type=float, default=RATE,
                        help=f"messages written a second (default {RATE:g})")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    print(f"chaos: seed {seed} (replay: python -m bench.chaos --seed {seed} "
          f"--seconds {args.seconds:g})", file=sys.stderr if args.json else sys.stdout,
          flush=True)
    with mysql_database() as url:
        counts, problems = run_chaos(url, seed, args.seconds, args.rate)
    if not args.json:
        print(table(counts))
        print("\n".join(f"  BROKEN  {problem}" for problem in problems[:50]))
        if problems:
            print(f"  the stack's logs: {', '.join(counts['stack_logs'])}")
    print(json.dumps({"bench": "chaos", "rows": [counts], "problems": problems[:50]}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
