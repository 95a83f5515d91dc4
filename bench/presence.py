"""Presence after a silent drop: what it costs and how fast it tells.

1. The cost of presence per connected user per hour, for idle users who ping every 60 s over a
   simulated hour (a fixed clock on MariaDB, the real ping path and scheduled function):
   invocations, DB round trips and writes, API Gateway messages (pings in, pongs out, presence
   pushes), and the seconds the scheduled function is billed for; this design beside the
   previous one (no presence sweep: a silent socket was shown online until the 10-minute idle
   sweep took it).
2. The time from a silent drop to the offline announcement (min / mean / max) over users
   dropping at random moments between pings that jitter by up to 10 s, and how many live
   users were ever shown offline (must be 0).
3. Presence that scales with group size (issue 24): what one connect and disconnect of a
   member of a group costs in `presence` pushes and in rows the audience query reads, by group
   size, under this rule (pushed only to 1:1s and groups of at most PRESENCE_PUSH_MAX_MEMBERS)
   and the previous one (everyone who shares a conversation); in-process on MariaDB.
4. A connect storm on the local stack: 1,000 devices (250 users x 4) opening their sockets
   at once, 16 handshakes in flight, as strangers and as one group (both in one database
   behind one stack, their storms taking turns for 5 rounds, so that a neighbour's load on a
   shared machine falls on both alike); the median round's connects a second, with the
   issue's figure from before the change beside them.

BENCH_QUICK=1 runs a few users for a quarter of an hour (seconds). MariaDB: a throwaway
database on BENCH_MYSQL_URL's server, dropped after.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import patch

from pymysql.connections import Connection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.quick import sized
from bench.report import emit, latency_summary
from bench.stack import running_stack
from bench.storage import mysql_database
from bench.worlds import migrated_world
from chalicelib.clock import FixedClock, SystemClock
from chalicelib.config import parse_database_url
from chalicelib.crypto import Keys
from chalicelib.ids import new_id
from chalicelib.services import expiry, frames, presence
from chalicelib.services.context import Caller, Context
from chalicelib.services.conversations import MEMBERS_MAX
from chalicelib.services.limits import NoLimits
from chalicelib.services.presence import Liveness
from chalicelib.services.tokens import Tokens
from chalicelib.storage import connections, users
from chalicelib.storage.database import Database, Transaction
from chalicelib.storage.engines import create_engine
from chalicelib.storage.migrate import migrate
from chalicelib.storage.users import Device
from tests.conftest import TEST_JWT_SECRET
from tests.integration.messaging_world import Person, World
from tests.support.fakes import TEST_KEYS, RecordingPush
from tests.support.round_trips import rows_read

QUICK = os.environ.get("BENCH_QUICK") == "1"
USERS = 10 if QUICK else 200
SIMULATED_S = 900 if QUICK else 3600
PING_EVERY_S = 60
PING_JITTER_S = 10
SCHEDULE_EVERY_S = 60
LIVENESS = Liveness(silent_after_ms=75_000, sweep_every_ms=15_000)
WATCH_S = SCHEDULE_EVERY_S - LIVENESS.sweep_every_ms // 1000
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
LAMBDA_GB_S_USD = 0.0000166667  # x86, us-east-1
HOURS_PER_MONTH = 730
# Issue 24: presence pushed only to 1:1s and groups of at most this many members (the default).
PUSH_MAX_MEMBERS = 50
PREVIOUS_RULE = MEMBERS_MAX  # every group pushed, as before issue 24
GROUP_SIZES = sized([10, 50, 100, 250], [10, 60])
DEVICES_PER_MEMBER = sized(4, 2)
STORM_USERS = sized(250, 5)
STORM_IN_FLIGHT = 16
STORM_ROUNDS = sized(5, 1)
HANDSHAKE_TIMEOUT_S = 10
# Measured on the local stack before the change (issue 24's text): the 4 devices of each of
# 255 members of one group connected at 28 connects/s at first, 4/s later, and the 617th
# socket's handshake timed out after 10 s.
ISSUE_BEFORE = {"first_connects_per_s": 28, "later_connects_per_s": 4}


class TimedPush(RecordingPush):
    """Records when (on the simulated clock) each frame was pushed."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__()
        self.clock = clock
        self.sent_at: list[int] = []

    def send(self, connection_id: str, frame: dict[str, Any]) -> bool:
        self.sent_at.append(self.clock.now_ms())
        return super().send(connection_id, frame)


@dataclass
class Costs:
    """What each kind of work cost: round trips and write statements, by who did it."""

    round_trips: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)
    doing: str = "setup"


@contextmanager
def counting(costs: Costs) -> Iterator[None]:
    """Count every PyMySQL request (and the write statements in it) under `costs.doing`."""
    send = Connection._execute_command

    def counted(connection: Connection, command: int, sql: str | bytes) -> object:
        text = sql.decode(errors="replace") if isinstance(sql, bytes) else str(sql)
        costs.round_trips[costs.doing] += 1
        costs.writes[costs.doing] += sum(
            1 for statement in text.split(";") if statement.strip().upper().startswith(WRITES))
        return send(connection, command, sql)

    with patch.object(Connection, "_execute_command", counted):
        yield


class Simulation:
    """Users pinging on a fixed clock, and the scheduled function every minute."""

    def __init__(self, url: str) -> None:
        migrate(create_engine(parse_database_url(url)))
        self.clock = FixedClock()
        self.push = TimedPush(self.clock)
        self.db = Database(create_engine(parse_database_url(url)))
        self.ctx = Context(db=self.db, push=self.push, clock=self.clock, limiter=NoLimits(),
                           keys=TEST_KEYS)
        self.world = World(self.ctx, self.push)
        self.costs = Costs()
        self.pings: list[tuple[int, str]] = []
        self.naps_s = 0.0
        self.runs = 0
        self.pings_delivered = 0
        self.start_ms = self.clock.now_ms()

    def connect_pairs(self, users: int) -> list[tuple[Any, Caller]]:
        """`users` people in pairs that share a chat, one socket each."""
        people = [self.world.person() for _ in range(users)]
        for first, second in zip(people[::2], people[1::2], strict=True):
            self.world.chat(first, second)
        return [(person, self.world.device(person)) for person in people]

    def advance_to(self, until_ms: int) -> None:
        """Deliver every ping due until `until_ms`, each at its own moment."""
        self.pings.sort(reverse=True)
        while self.pings and self.pings[-1][0] <= until_ms:
            at_ms, connection_id = self.pings.pop()
            self.clock.set(at_ms)
            self.costs.doing = "pings"
            self.pings_delivered += 1
            frames.handle_frame('{"action": "ping"}', connection_id, self.ctx)
        self.clock.set(until_ms)

    def sleep(self, seconds: float) -> None:
        self.naps_s += seconds
        self.advance_to(self.clock.now_ms() + round(seconds * 1000))
        self.costs.doing = "schedule"

    def run_schedule(self, *, until_ms: int, watch_s: int) -> None:
        """A scheduled run at the start of every minute before `until_ms`, then the pings
        until it: each run, with its watching, falls inside the simulated time."""
        for run_at in range(self.start_ms, until_ms, SCHEDULE_EVERY_S * 1000):
            self.advance_to(run_at)
            self.costs.doing = "schedule"
            self.runs += 1
            expiry.run_cleanup(self.ctx, idle_timeout_s=600, max_connection_s=7200)
            if watch_s:  # the presence watch: a second scheduled function
                self.runs += 1
                presence.run_watch(self.ctx, liveness=LIVENESS, watch_for_s=watch_s,
                                   sleep=self.sleep)
        self.advance_to(until_ms)

    def frames_of(self, frame_type: str) -> list[tuple[int, dict[str, Any]]]:
        return [(at, frame) for at, (_, frame) in zip(self.push.sent_at, self.push.frames,
                                                      strict=True)
                if frame["type"] == frame_type]


def idle_hour(url: str, *, sweeping: bool) -> dict[str, Any]:
    """USERS idle users pinging every 60 s for SIMULATED_S; the cost per user per hour."""
    sim = Simulation(url)
    connected = sim.connect_pairs(USERS)
    phases = random.Random(7)
    pinging_ms = SIMULATED_S * 1000
    for _, caller in connected:
        first = phases.randrange(PING_EVERY_S * 1000)
        sim.pings += [(sim.start_ms + at, caller.connection_id)
                      for at in range(first, pinging_ms, PING_EVERY_S * 1000)]
    sim.push.frames.clear()
    sim.push.sent_at.clear()
    with counting(sim.costs):
        sim.run_schedule(until_ms=sim.start_ms + SIMULATED_S * 1000,
                         watch_s=WATCH_S if sweeping else 0)
    sim.db.close()
    pings = sim.pings_delivered
    per_user_hour = 3600 / SIMULATED_S / USERS
    billed_s = sim.naps_s  # the waiting; each run's own work is a few ms on top
    return {
        "design": "silent sweep (this)" if sweeping else "previous (idle sweep only)",
        "invocations": round((pings + sim.runs) * per_user_hour, 2),
        "db_round_trips": round(sum(sim.costs.round_trips.values()) * per_user_hour, 2),
        "db_writes": round(sum(sim.costs.writes.values()) * per_user_hour, 2),
        "sweep_round_trips": round(sim.costs.round_trips["schedule"] * per_user_hour, 3),
        "pings_in": round(pings * per_user_hour, 2),
        "pongs_out": round(len(sim.frames_of("pong")) * per_user_hour, 2),
        "presence_pushes": round(len(sim.frames_of("presence")) * per_user_hour, 2),
        "scheduled_waiting_s_per_hour": round(billed_s * 3600 / SIMULATED_S),
    }


def drops(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every user pings every 60 s +/- 10 s, and drops silently once at a random moment; the
    time from each drop (and from the last ping) to the offline announcement."""
    sim = Simulation(url)
    connected = sim.connect_pairs(USERS)
    rand = random.Random(11)
    horizon_ms = SIMULATED_S * 1000
    # Someone who shares a chat with everyone and never drops, so that every announcement
    # has an audience (a partner's socket is gone ten minutes after their own drop).
    watcher = sim.world.person()
    for person, _ in connected:
        sim.world.chat(watcher, person)
    watching = sim.world.device(watcher)
    sim.pings += [(sim.start_ms + at, watching.connection_id)
                  for at in range(0, horizon_ms, PING_EVERY_S * 1000)]
    dropped_at: dict[str, int] = {}
    last_ping_at: dict[str, int] = {}
    for person, caller in connected:
        drop = rand.randrange(horizon_ms // 6, horizon_ms - 120_000)
        at = rand.randrange(PING_EVERY_S * 1000)
        last = 0
        while at < drop:
            sim.pings.append((sim.start_ms + at, caller.connection_id))
            last = at
            at += (PING_EVERY_S + rand.uniform(-PING_JITTER_S, PING_JITTER_S)) * 1000
            at = int(at)
        dropped_at[person.id] = sim.start_ms + drop
        last_ping_at[person.id] = sim.start_ms + last
    sim.push.frames.clear()
    sim.push.sent_at.clear()
    sim.run_schedule(until_ms=sim.start_ms + horizon_ms, watch_s=WATCH_S)
    sim.db.close()

    first_offline: dict[str, int] = {}
    false_offline = 0
    for at, frame in sim.frames_of("presence"):
        user = frame["user_id"]
        if user == watcher.id:
            continue
        if frame["online"] is False and user not in first_offline:
            first_offline[user] = at
            false_offline += at < dropped_at[user]
    from_drop = [(first_offline[u] - dropped_at[u]) / 1000 for u in first_offline]
    from_ping = [(first_offline[u] - last_ping_at[u]) / 1000 for u in first_offline]
    summary = {"drops": len(dropped_at), "announced": len(first_offline),
               "false_offline": false_offline}
    return summary, {"from the drop": from_drop, "from the last ping": from_ping}


# --- 3. one connect's cost by group size -------------------------------------------------------


def in_a_group(world: World, size: int) -> Person:
    """A member of a group of `size` and of a 1:1, everyone else connected on
    DEVICES_PER_MEMBER devices."""
    person, partner = world.person(), world.person()
    world.chat(person, partner)
    others = [world.person() for _ in range(size - 1)]
    world.chat(person, *others)
    for other in [partner, *others]:
        for _ in range(DEVICES_PER_MEMBER):
            world.device(other)
    return person


def connect_cost(ctx: Context, push: RecordingPush, person: Person) -> dict[str, Any]:
    """Pushes of one connect + disconnect (first and last device), rows its audience reads,
    and its time (median of 5)."""
    world = World(ctx, push)
    timings, pushes = [], 0
    for _ in range(5):
        push.frames.clear()
        started = time.perf_counter()
        world.disconnect(world.device(person))
        timings.append((time.perf_counter() - started) * 1000)
        pushes = sum(1 for _, frame in push.frames if frame["type"] == "presence")
    rows = rows_read(ctx.db, lambda txn: connections.connection_ids_of_contacts(
        txn, person.id, max_group_members=ctx.presence_push_max_members))
    return {"presence_pushes": pushes, "audience_rows_read": rows,
            "connect_disconnect_ms": round(sorted(timings)[2], 2)}


def cost_by_group_size(url: str) -> list[dict[str, Any]]:
    world = migrated_world(url)
    this = dataclasses.replace(world.ctx, presence_push_max_members=PUSH_MAX_MEMBERS)
    previous = dataclasses.replace(world.ctx, presence_push_max_members=PREVIOUS_RULE)
    world.ctx = this
    rows = []
    for size in GROUP_SIZES:
        person = in_a_group(world, size)
        for rule, ctx in ((f"this (groups <= {PUSH_MAX_MEMBERS})", this),
                          ("previous (everyone)", previous)):
            rows.append({"group_members": size, "devices_each": DEVICES_PER_MEMBER,
                         "rule": rule, **connect_cost(ctx, world.push, person)})
    world.ctx.db.close()
    return rows


# --- 4. a connect storm on the local stack -------------------------------------------------------


@dataclass(frozen=True)
class StormDevice:
    user_id: str
    device_id: str


def storm_population(world: World, *, grouped: bool) -> list[StormDevice]:
    """STORM_USERS people with DEVICES_PER_MEMBER devices each, in one group or strangers, in
    the order a reconnect storm brings them: every user's first device, then the second..."""
    people = [world.person() for _ in range(STORM_USERS)]
    if grouped:
        world.chat(people[0], *people[1:])
    now = world.ctx.clock.now_ms()
    devices = [[StormDevice(person.id, new_id()) for _ in range(DEVICES_PER_MEMBER)]
               for person in people]
    for device in (d for mine in devices for d in mine):
        world.ctx.db.run_transaction("bench.device", users.insert_device, Device(
            device.device_id, device.user_id, "bench", 0, now, now, None))
    return [mine[k] for k in range(DEVICES_PER_MEMBER) for mine in devices]


async def storm(ws_url: str, devices: list[StormDevice]) -> dict[str, Any]:
    """Open every device's socket, STORM_IN_FLIGHT handshakes at a time (tickets signed here
    with the stack's secret, so only `$connect` is timed), then close them all. Every socket
    is read throughout: an unread socket would hold the stack's pushes back."""
    keys = Keys.from_secret(TEST_JWT_SECRET)
    tokens = Tokens(key=keys.jwt, issuer="ephemera", audience="ephemera-api",
                    clock=SystemClock())
    gate = asyncio.Semaphore(STORM_IN_FLIGHT)
    sockets: list[ClientConnection] = []
    readers: list[asyncio.Task[None]] = []
    handshakes_ms: list[float] = []
    received = Counter[str]()

    async def read(socket: ClientConnection) -> None:
        try:
            async for raw in socket:
                received["presence" if '"presence"' in str(raw) else "other"] += 1
        except ConnectionClosed:
            pass

    async def open_one(device: StormDevice) -> None:
        async with gate:
            ticket = tokens.ticket(device.user_id, device.device_id)
            started = time.perf_counter()
            try:
                socket = await connect(f"{ws_url}?ticket={ticket}",
                                       open_timeout=HANDSHAKE_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - a refused or timed-out handshake is counted
                received["errors"] += 1
                return
            handshakes_ms.append((time.perf_counter() - started) * 1000)
            sockets.append(socket)
            readers.append(asyncio.create_task(read(socket)))

    started = time.perf_counter()
    await asyncio.gather(*(open_one(device) for device in devices))
    elapsed_s = time.perf_counter() - started
    await asyncio.sleep(1)  # pushes still on their way
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
    return {"connects_per_s": len(handshakes_ms) / elapsed_s, "handshakes_ms": handshakes_ms,
            "presence_frames": received["presence"], "errors": received["errors"]}


def wait_until_all_closed(db: Database, timeout_s: float = 60) -> None:
    """Until the stack has handled every `$disconnect` of the last storm."""

    def open_connections(txn: Transaction) -> int:
        txn.execute("SELECT COUNT(*) AS n FROM connections")
        return int(txn.fetchone()["n"])

    deadline = time.monotonic() + timeout_s
    while db.run_read("bench.open_connections", open_connections) and \
            time.monotonic() < deadline:
        time.sleep(0.2)


def storm_row(who: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round's figures, and every round's rate."""
    rates = [run["connects_per_s"] for run in runs]
    median = sorted(runs, key=lambda run: run["connects_per_s"])[len(runs) // 2]
    summary = latency_summary(median["handshakes_ms"]) if median["handshakes_ms"] else {}
    return {"who": who, "devices": STORM_USERS * DEVICES_PER_MEMBER,
            "shape": f"{STORM_USERS} x {DEVICES_PER_MEMBER} devices",
            "connects_per_s": round(median["connects_per_s"], 1),
            "rounds_per_s": " ".join(str(round(rate)) for rate in rates),
            "handshake_p50_ms": summary.get("p50_ms", 0),
            "handshake_p99_ms": summary.get("p99_ms", 0),
            "presence_frames": sum(run["presence_frames"] for run in runs),
            "errors": sum(run["errors"] for run in runs)}


def connect_storms() -> list[dict[str, Any]]:
    """Both populations in one database behind one stack, their storms taking turns round
    after round (so a neighbour's load on the shared machine falls on both alike)."""
    with mysql_database() as url:
        world = migrated_world(url)
        populations = {"strangers": storm_population(world, grouped=False),
                       "one group": storm_population(world, grouped=True)}
        runs: dict[str, list[dict[str, Any]]] = {who: [] for who in populations}
        with running_stack(url, LOCAL_SCHEDULE="off") as stack:
            ws_url = stack.base_url.replace("http://", "ws://") + "/ws"
            for _ in range(STORM_ROUNDS):
                for who, devices in populations.items():
                    runs[who].append(asyncio.run(storm(ws_url, devices)))
                    wait_until_all_closed(world.ctx.db)
        world.ctx.db.close()
    return [storm_row(who, rounds) for who, rounds in runs.items()]


def report_scale() -> None:
    """Parts 3 and 4: presence by group size, and the connect storm."""
    with mysql_database() as url:
        by_size = cost_by_group_size(url)
    emit("one connect + disconnect of a group member (first and last device): presence pushes"
         " and rows its audience query reads, by group size (in-process, MariaDB)", by_size)
    strangers, group = connect_storms()
    ratio = round(group["connects_per_s"] / strangers["connects_per_s"], 2) \
        if strangers["connects_per_s"] else 0
    emit(f"connect storm on the local stack, {STORM_IN_FLIGHT} handshakes in flight, median of"
         f" {STORM_ROUNDS} rounds taking turns; one group / strangers = {ratio}", [
             strangers, group,
             {"who": "one group, before (issue 24)", "devices": 1020, "shape": "255 x 4 devices",
              "connects_per_s": ISSUE_BEFORE["later_connects_per_s"],
              "rounds_per_s": f"{ISSUE_BEFORE['first_connects_per_s']} falling to"
                              f" {ISSUE_BEFORE['later_connects_per_s']}",
              "handshake_p50_ms": "", "handshake_p99_ms": "> 10 s from the 617th",
              "presence_frames": "", "errors": ""}])


def report_liveness() -> None:
    """Parts 1 and 2: presence after a silent drop."""
    with mysql_database() as url:
        previous = idle_hour(url, sweeping=False)
    with mysql_database() as url:
        current = idle_hour(url, sweeping=True)
    with mysql_database() as url:
        summary, latencies = drops(url)

    emit(f"presence cost per connected user per hour ({USERS} idle users pinging every"
         f" {PING_EVERY_S} s, {SIMULATED_S} simulated s)", [previous, current])
    waiting_s = current["scheduled_waiting_s_per_hour"]
    month_usd = waiting_s * HOURS_PER_MONTH * LAMBDA_GB_S_USD
    emit("the scheduled function's waiting, billed per month", [
        {"memory_mb": mb, "gb_s_per_month": round(waiting_s * HOURS_PER_MONTH * mb / 1024),
         "usd_per_month": round(month_usd * mb / 1024, 2)} for mb in (128, 512, 1024)])
    emit(f"silent drop -> offline announcement, seconds ({summary['drops']} drops,"
         f" {summary['announced']} announced, false offline: {summary['false_offline']})", [
        {"measured": name, "n": len(values), "min_s": round(min(values), 1),
         "mean_s": round(sum(values) / len(values), 1), "max_s": round(max(values), 1)}
        for name, values in latencies.items() if values])


def main() -> None:
    report_scale()
    report_liveness()


if __name__ == "__main__":
    main()
