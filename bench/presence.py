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

BENCH_QUICK=1 runs a few users for a quarter of an hour (seconds). MariaDB: a throwaway
database on BENCH_MYSQL_URL's server, dropped after.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import patch

from pymysql.connections import Connection

from bench.report import emit
from bench.storage import mysql_database
from chalicelib.clock import FixedClock
from chalicelib.config import parse_database_url
from chalicelib.services import expiry, frames, presence
from chalicelib.services.context import Caller, Context
from chalicelib.services.limits import NoLimits
from chalicelib.services.presence import Liveness
from chalicelib.storage.database import Database
from chalicelib.storage.engines import create_engine
from chalicelib.storage.migrate import migrate
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush

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


def main() -> None:
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


if __name__ == "__main__":
    main()
