"""The expiry engine under load: rows deleted per second for a 200,000-row backlog, and what a
purge does to concurrent sends (p50/p99 with and without one running; the ratio is the figure).
MariaDB: a throwaway database on BENCH_MYSQL_URL's server, dropped after."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from typing import Any

from bench.quick import sized
from bench.report import emit, latency_summary
from bench.storage import mysql_database
from bench.worlds import migrated_world
from chalicelib.clock import SystemClock
from chalicelib.config import parse_database_url
from chalicelib.ids import new_id
from chalicelib.services import frames
from chalicelib.services.context import Caller, Context
from chalicelib.services.expiry import purge_expired
from chalicelib.services.limits import NoLimits
from chalicelib.storage.database import Database, Transaction
from chalicelib.storage.engines import create_engine
from tests.support.fakes import TEST_KEYS, RecordingPush

BACKLOG = sized(200_000, 5_000)
SENDER_THREADS = sized(4, 2)
SENDS_PER_THREAD = sized(250, 10)


def fill_backlog(db: Database, conversation_id: str, sender_id: str, rows: int) -> None:
    expired_at = SystemClock().now_ms() - 1
    for start in range(0, rows, 10_000):
        batch = [(new_id(), conversation_id, 1_000_000 + i, sender_id, "dev", f"b{i:09d}", "x",
                  0, expired_at) for i in range(start, min(rows, start + 10_000))]

        def insert(txn: Transaction, batch: list = batch) -> None:
            txn.executemany(
                "INSERT INTO messages (id, conversation_id, seq, sender_id, sender_device_id,"
                " client_msg_id, body, created_at, expires_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", batch)

        db.run_transaction("bench.fill", insert)


def timed_sends(url: str, callers: list[Caller], conversation_id: str) -> list[float]:
    """Each sender in a process of its own, as concurrent Lambdas are: what is measured is
    the database's answer, not this interpreter's GIL."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(callers)) as pool:
        results = pool.starmap(_send_many, [(url, c, conversation_id) for c in callers])
    return [sample for samples in results for sample in samples]


def _send_many(url: str, caller: Caller, conversation_id: str) -> list[float]:
    db = Database(create_engine(parse_database_url(url)))
    ctx = Context(db=db, push=RecordingPush(), clock=SystemClock(), limiter=NoLimits(),
                  keys=TEST_KEYS)
    samples = []
    for i in range(SENDS_PER_THREAD):
        frame = json.dumps({"action": "send", "conversation_id": conversation_id,
                            "client_msg_id": new_id(), "body": "x" * 100, "req": i})
        started = time.perf_counter()
        frames.handle_frame(frame, caller.connection_id, ctx)
        samples.append((time.perf_counter() - started) * 1000)
    db.close()
    return samples


def _purge_in_process(url: str) -> None:
    db = Database(create_engine(parse_database_url(url)))
    ctx = Context(db=db, push=RecordingPush(), clock=SystemClock(), limiter=NoLimits(),
                  keys=TEST_KEYS)
    purge_expired(ctx, **_engine_settings())
    db.close()


def _engine_settings() -> dict[str, Any]:
    """BENCH_BATCH and BENCH_REST try other engine settings than the defaults."""
    settings: dict[str, Any] = {}
    if os.environ.get("BENCH_BATCH"):
        settings["batch_size"] = int(os.environ["BENCH_BATCH"])
    if os.environ.get("BENCH_REST"):
        settings["rest_ratio"] = float(os.environ["BENCH_REST"])
    return settings


def main() -> None:
    with mysql_database() as url:
        world = migrated_world(url)
        db = world.ctx.db
        alice, bob = world.person(), world.person()
        old_chat, live_chat = world.chat(alice, bob), world.chat(alice, world.person())
        devices = [world.device(alice) for _ in range(SENDER_THREADS)]

        fill_backlog(db, old_chat, alice.id, BACKLOG)
        started = time.perf_counter()
        report = purge_expired(world.ctx, **_engine_settings())
        purge_s = time.perf_counter() - started

        quiet = timed_sends(url, devices, live_chat)
        fill_backlog(db, old_chat, alice.id, BACKLOG)
        # The purge is a separate Lambda in AWS: a separate process here, not a thread that
        # would compete with the senders for this interpreter's GIL.
        purge = multiprocessing.get_context("spawn").Process(target=_purge_in_process,
                                                             args=(url,))
        purge.start()
        busy = timed_sends(url, devices, live_chat)
        purge.join()
        db.close()

    without, during = latency_summary(quiet), latency_summary(busy)
    emit(f"expiry engine, {BACKLOG:,}-row backlog (MariaDB, batches of 2,000)", [
        {"what": "rows deleted", "value": report.deleted},
        {"what": "batches", "value": report.batches},
        {"what": "seconds", "value": round(purge_s, 2)},
        {"what": "rows per second", "value": round(report.deleted / purge_s)},
    ])
    emit(f"{SENDER_THREADS} sender processes, without and during a purge", [
        {"case": "no purge", **without},
        {"case": "during a purge", **during},
        {"case": "ratio (during / without)", "n": "",
         "p50_ms": round(during["p50_ms"] / without["p50_ms"], 2),
         "p99_ms": round(during["p99_ms"] / without["p99_ms"], 2), "max_ms": "", "per_s": ""},
    ])


if __name__ == "__main__":
    main()
