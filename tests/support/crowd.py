"""A crowd on a running local stack: one group of many members with several devices each,
seeded straight into the stack's database (signing up a thousand people through SMS codes
would measure the login, not the fan-out), each device on a WebSocket of its own opened with a
ticket signed by the stack's secret. The e2e fan-out tests and bench/fanout.py share it;
bench/sockets_held.py seeds people in no conversation (`seed_devices`) and opens their sockets
with `open_socket`."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from chalicelib.clock import SystemClock
from chalicelib.config import parse_database_url
from chalicelib.crypto import Keys
from chalicelib.ids import new_id
from chalicelib.services.tokens import Tokens
from chalicelib.storage import conversations, users
from chalicelib.storage.conversations import ACCEPTED, Conversation, Participant
from chalicelib.storage.database import Database, Transaction
from chalicelib.storage.engines import create_engine
from chalicelib.storage.users import Device, User

CONNECTS_AT_ONCE = 50
_phone_numbers = itertools.count(random.randrange(1_000_000))


@dataclass(frozen=True)
class SeededDevice:
    user_id: str
    device_id: str


@dataclass(frozen=True)
class SeededGroup:
    conversation_id: str
    sender: SeededDevice
    devices: list[SeededDevice]  # every other member's devices


def seed_group(database_url: str, *, members: int, devices_each: int,
               ttl_seconds: int = 3600) -> SeededGroup:
    """A group of a sender (one device) and `members` others with `devices_each` devices, all
    accepted, in one transaction."""
    db = Database(create_engine(parse_database_url(database_url)))
    now = int(time.time() * 1000)

    def seed_txn(txn: Transaction) -> SeededGroup:
        sender = _person(txn, now, devices=1)[0]
        others = [device for _ in range(members)
                  for device in _person(txn, now, devices=devices_each)]
        group = Conversation(id=new_id(now), kind="group", direct_key=None, title="crowd",
                             ttl_seconds=ttl_seconds, last_seq=0, created_by=sender.user_id,
                             created_at=now, updated_at=now, activity_at=now)
        conversations.insert_conversation(txn, group)
        member_ids = dict.fromkeys(d.user_id for d in others)
        conversations.insert_participants(txn, [
            Participant(group.id, sender.user_id, "owner", 0, 0, 0, now, ACCEPTED),
            *(Participant(group.id, user_id, "member", 0, 0, 0, now, ACCEPTED)
              for user_id in member_ids)])
        return SeededGroup(group.id, sender, others)

    try:
        return db.run_transaction("crowd.seed", seed_txn)
    finally:
        db.close()


def seed_devices(database_url: str, *, people: int, devices_each: int = 1,
                 batch: int = 1000) -> list[SeededDevice]:
    """`people` users with `devices_each` devices each, in no conversation (so no presence
    frame reaches anyone when they connect), `batch` people a transaction."""
    db = Database(create_engine(parse_database_url(database_url)))
    now = int(time.time() * 1000)

    def seed_txn(txn: Transaction, count: int) -> list[SeededDevice]:
        return [device for _ in range(count)
                for device in _person(txn, now, devices=devices_each)]

    try:
        seeded: list[SeededDevice] = []
        for start in range(0, people, batch):
            count = min(batch, people - start)
            seeded += db.run_transaction("crowd.seed", lambda txn, n=count: seed_txn(txn, n))
        return seeded
    finally:
        db.close()


def _person(txn: Transaction, now: int, *, devices: int) -> list[SeededDevice]:
    number = next(_phone_numbers) % 10_000_000
    user = User(id=new_id(now), phone=f"+1628{number:07d}", created_at=now,
                activated_at=now, last_seen_at=None)
    users.insert_user(txn, user)
    seeded = []
    for _ in range(devices):
        device = Device(new_id(now), user.id, "crowd", 0, now, now, None)
        users.insert_device(txn, device)
        seeded.append(SeededDevice(user.id, device.id))
    return seeded


@dataclass
class Socket:
    """One device's WebSocket and every frame it got, with when it got it."""

    device: SeededDevice
    socket: aiohttp.ClientWebSocketResponse
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def read_forever(self) -> None:
        async for message in self.socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            self.frames.append((time.monotonic(), json.loads(message.data)))
            self.arrived.set()

    def received(self, frame_type: str, **match: Any) -> list[tuple[float, dict[str, Any]]]:
        return [(at, frame) for at, frame in self.frames if frame.get("type") == frame_type
                and all(frame.get(k) == v for k, v in match.items())]

    async def wait_for(self, frame_type: str, timeout_s: float = 10, **match: Any
                       ) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while not (found := self.received(frame_type, **match)):
            self.arrived.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {frame_type} {match} within {timeout_s} s")
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                continue
        return found[0]

    async def send(self, **frame: Any) -> None:
        await self.socket.send_str(json.dumps(frame, ensure_ascii=False))


def ticket_signer(jwt_secret: str) -> Tokens:
    """Tickets as the stack's `POST /ws/ticket` signs them, with the stack's secret."""
    return Tokens(key=Keys.from_secret(jwt_secret).jwt, issuer="ephemera",
                  audience="ephemera-api", clock=SystemClock())


async def open_socket(http: aiohttp.ClientSession, ws_url: str, tokens: Tokens,
                      device: SeededDevice) -> aiohttp.ClientWebSocketResponse:
    """`device`'s socket, with a ticket minted just now (a ticket lives 60 s: one minted before
    a long queue of connects would expire in it). No heartbeat of aiohttp's own: the protocol's
    `ping` is the heartbeat, and a test sends it when it means to."""
    ticket = tokens.ticket(device.user_id, device.device_id)
    return await http.ws_connect(f"{ws_url}?ticket={ticket}", heartbeat=None,
                                 timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10))


def unlimited_http() -> aiohttp.ClientSession:
    """No cap on connections: each socket holds one (aiohttp's default cap is 100)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


class Crowd:
    """Every device of a seeded group connected (`async with Crowd(...) as crowd`)."""

    def __init__(self, ws_url: str, group: SeededGroup, jwt_secret: str) -> None:
        self.ws_url, self.group = ws_url, group
        self._tokens = ticket_signer(jwt_secret)
        self.http = unlimited_http()
        self.sender: Socket | None = None
        self.members: list[Socket] = []
        self._readers: list[asyncio.Task[None]] = []
        self.connect_s = 0.0

    async def __aenter__(self) -> Crowd:
        started = time.monotonic()
        try:
            gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
            self.members = list(await asyncio.gather(
                *(self._connect(device, gate) for device in self.group.devices)))
            self.sender = await self._connect(self.group.sender, gate)
        except BaseException:
            await self.close()
            raise
        self.connect_s = time.monotonic() - started
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _connect(self, device: SeededDevice, gate: asyncio.Semaphore) -> Socket:
        async with gate:
            socket = await open_socket(self.http, self.ws_url, self._tokens, device)
        connected = Socket(device, socket)
        self._readers.append(asyncio.create_task(connected.read_forever()))
        return connected

    async def close(self) -> None:
        sockets = ([self.sender] if self.sender else []) + self.members
        await asyncio.gather(*(s.socket.close() for s in sockets), return_exceptions=True)
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self.http.close()

    async def send_and_time(self, body: str) -> Delivered:
        """One message from the sender: when its `sent` came and when each device had it."""
        assert self.sender is not None
        client_msg_id = f"crowd-{new_id()}"
        started = time.monotonic()
        await self.sender.send(action="send", req=client_msg_id, conversation_id=self.group.
                               conversation_id, client_msg_id=client_msg_id, body=body)
        sent_at, sent = await self.sender.wait_for("sent", req=client_msg_id, timeout_s=30)
        return Delivered(sent["message_id"], started, sent_at)

    async def wait_until_everyone_has(self, delivered: Delivered, timeout_s: float = 60) -> float:
        """Seconds from the send until the last device had the message."""
        arrivals = await asyncio.gather(*(
            member.wait_for("message", timeout_s=timeout_s, message_id=delivered.message_id)
            for member in self.members))
        return max(at for at, _ in arrivals) - delivered.started

    def copies_per_device(self, message_id: str) -> Counter:
        return Counter(len(member.received("message", message_id=message_id))
                       for member in self.members)


@dataclass(frozen=True)
class Delivered:
    message_id: str
    started: float
    sent_at: float

    @property
    def sent_after_s(self) -> float:
        return self.sent_at - self.started
