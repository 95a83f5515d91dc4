"""The rate limiter's cost: checks per second on one connection, and what it adds to a send
(p50/p99 with the limiter on and off, and database round trips). MariaDB, throwaway database."""

from __future__ import annotations

import time
from typing import Any

from bench.quick import sized
from bench.report import emit, latency_summary
from bench.storage import mysql_database
from chalicelib.clock import SystemClock
from chalicelib.config import parse_database_url
from chalicelib.services.context import Context
from chalicelib.services.limits import (
    Limiter,
    NoLimits,
    Policy,
    SlidingWindowLimiter,
    load_policies,
)
from chalicelib.storage.database import Database
from chalicelib.storage.engines import create_engine
from chalicelib.storage.migrate import migrate
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush
from tests.support.round_trips import counting_round_trips

CHECKS = sized(3_000, 100)
SENDS = sized(600, 30)


def checks_per_second(db: Database) -> dict[str, Any]:
    limiter = SlidingWindowLimiter(db=db, clock=SystemClock(),
                                   policies={"bench": Policy("bench", 10**9, 60_000)})
    samples = []
    for i in range(CHECKS):
        started = time.perf_counter()
        limiter.check([("bench", f"key-{i % 50}")])
        samples.append((time.perf_counter() - started) * 1000)
    return {"case": "one check (own transaction)", **latency_summary(samples)}


def send_latency(db: Database, limiter: Limiter, label: str) -> dict[str, Any]:
    push, clock = RecordingPush(), SystemClock()
    world = World(Context(db=db, push=push, clock=clock, limiter=limiter, keys=TEST_KEYS), push)
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    samples = []
    for i in range(SENDS):
        started = time.perf_counter()
        world.send(phone, chat, body=f"message {i}")
        samples.append((time.perf_counter() - started) * 1000)
    assert not world.received(phone, "error"), "the benchmark's limits must not deny"
    return {"case": f"send, limiter {label}", **latency_summary(samples)}


def main() -> None:
    with mysql_database() as url:
        engine = create_engine(parse_database_url(url))
        migrate(engine)
        db = Database(engine)
        # Roomy limits, so that every send is checked and none denied.
        roomy = {name: Policy(name, 10**9, p.window_ms)
                 for name, p in load_policies({}).items()}
        limiter = SlidingWindowLimiter(db=db, clock=SystemClock(), policies=roomy)
        rows = [checks_per_second(db)]
        with counting_round_trips() as trips_off:
            rows.append(send_latency(db, NoLimits(), "off"))
        with counting_round_trips() as trips_on:
            rows.append(send_latency(db, limiter, "on"))
        db.close()
    off, on = rows[1], rows[2]
    rows.append({"case": "ratio (on / off)", "n": "",
                 "p50_ms": round(on["p50_ms"] / off["p50_ms"], 2),
                 "p99_ms": round(on["p99_ms"] / off["p99_ms"], 2), "max_ms": "", "per_s": ""})
    emit("rate limiter (MariaDB, one connection)", rows)
    emit("database round trips per send (set-up included, averaged)", [
        {"limiter": "off", "round_trips": round(trips_off.total / SENDS, 2)},
        {"limiter": "on", "round_trips": round(trips_on.total / SENDS, 2)},
    ])

if __name__ == "__main__":
    main()
