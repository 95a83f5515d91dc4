"""Sockets held (issue 25): N concurrent WebSockets with heartbeats on the local stack for a few
minutes, the front process's memory and every error, beside a bare aiohttp server holding the
same N sockets the same way (bench/bare_websocket.py), in the same sitting.

The stack runs on a throwaway MariaDB database, every rate limit lifted, four workers as
`make run` has them, its schedule on. N people in no conversation (so no presence frame goes
anywhere) are seeded straight into the database and each opens one socket with a ticket signed
by the stack's secret (tests/support/crowd.py), 50 connects at a time. Each socket then sends
PROTOCOL's heartbeat, a `ping` frame, every `--ping-every` seconds (60, both clients'
cadence; PROTOCOL asks for one at least every 300), from when all are open, the N sockets'
pings spread over that period (every one is a `$default` invocation). The bare server
answers the same `ping` with the same `pong`.

Memory: the server process's VmRSS and VmHWM (/proc/<pid>/status), and PSS and USS
(private pages) from /proc/<pid>/smaps_rollup; once ready (idle), after the connects, and at
the end of the hold; `kb_per_socket` = (held - idle) / sockets held. The stack's workers are
other processes (their RSS is shown apart). Errors: connects that failed, sockets closed
before the end, `error` frames, pings without a `pong` within 10 s (the Python client's dead-link
timeout). CPU: the server's process tree, from /proc.

    python -m bench.sockets_held --sockets 10000 --minutes 3 [--json]
    BENCH_QUICK=1 python -m bench.sockets_held     (100 sockets for 6 s, pings every 5 s)

`--tracemalloc FRAMES` starts the stack with EPHEMERA_TRACEMALLOC=FRAMES and, at the end of the
hold, has its front process print where its memory is, by line (local_stack/__main__.py); the
figures of such a run are inflated by the tracing itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from socket import create_connection
from typing import Any

import aiohttp
import pymysql

from bench.cpu import process_tree, tree_cpu_seconds
from bench.quick import sized
from bench.report import emit
from bench.stack import running_stack
from bench.storage import mysql_database
from chalicelib.config import parse_database_url
from chalicelib.ids import new_id
from chalicelib.storage.engines import create_engine
from chalicelib.storage.migrate import migrate
from local_stack.port import raise_open_file_limit
from tests.conftest import TEST_JWT_SECRET
from tests.support.crowd import (
    CONNECTS_AT_ONCE,
    SeededDevice,
    open_socket,
    seed_devices,
    ticket_signer,
    unlimited_http,
)
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
PONG_TIMEOUT_S = 10.0  # ephemera_client's Timing.answer_timeout_s: a link silent this long is dead
TICK_S = 0.05
TRACE_REPORT_S = 20.0  # a snapshot of 10,000 sockets' allocations takes seconds to print
MB = 1024 * 1024
# This process holds one file per socket, plus its own.
SPARE_FILES = 200

Opener = Callable[[aiohttp.ClientSession, int], Awaitable[aiohttp.ClientWebSocketResponse]]


# --- memory and CPU of a server process ----------------------------------------------------

def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) from /proc/<pid>/status; PSS and USS (private clean + dirty)
    from /proc/<pid>/smaps_rollup. In kB."""
    figures: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[name] = int(value.split()[0])
    rollup: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, _, value = line.partition(":")
            rollup[name] = int(value.split()[0])
    figures["Pss"] = rollup.get("Pss", 0)
    figures["Uss"] = rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)
    return figures


def rss_of_children_kb(pid: int) -> tuple[int, int]:
    """How many processes `pid` started (the stack's workers), and their RSS together."""
    children = [child for child in process_tree(pid) if child != pid]
    total = 0
    for child in children:
        with contextlib.suppress(OSError, KeyError):
            total += memory_kb(child)["VmRSS"]
    return len(children), total


# --- holding the sockets -------------------------------------------------------------------

@dataclass
class Tally:
    """What happened to the sockets, counted as it happens."""

    connected: int = 0
    failed_connects: int = 0
    closed_early: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)
    error_frames: int = 0
    other_frames: int = 0
    pings: int = 0
    pongs: int = 0
    missed_pongs: int = 0  # no pong within PONG_TIMEOUT_S
    late_pongs: int = 0  # the pong of a ping counted missed, after all
    pong_ms: list[float] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.failed_connects + self.closed_early + self.error_frames + self.missed_pongs


class Held:
    """One socket, and when each of its unanswered pings went, by `req`."""

    __slots__ = ("socket", "unanswered", "closing")

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.unanswered: dict[str, float] = {}
        self.closing = False

    async def read(self, tally: Tally) -> None:
        async for message in self.socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(message.data)
            if frame.get("type") == "pong":
                sent_at = self.unanswered.pop(frame.get("req"), None)
                if sent_at is None:
                    tally.late_pongs += 1
                else:
                    tally.pongs += 1
                    tally.pong_ms.append((time.monotonic() - sent_at) * 1000)
            elif frame.get("type") == "error":
                tally.error_frames += 1
            else:
                tally.other_frames += 1
        if not self.closing:
            tally.closed_early += 1
            code = str(self.socket.close_code)
            tally.close_codes[code] = tally.close_codes.get(code, 0) + 1

    def give_up_on_old_pings(self, tally: Tally, now: float) -> None:
        """Pings unanswered for PONG_TIMEOUT_S are missed (a client would call the link dead)."""
        for req, sent_at in list(self.unanswered.items()):
            if now - sent_at >= PONG_TIMEOUT_S:
                del self.unanswered[req]
                tally.missed_pongs += 1

    async def ping(self, tally: Tally, req: int) -> None:
        now = time.monotonic()
        self.give_up_on_old_pings(tally, now)
        self.unanswered[str(req)] = now
        tally.pings += 1
        with contextlib.suppress(ConnectionError, RuntimeError):  # closed: the reader counts it
            await self.socket.send_str(json.dumps({"action": "ping", "req": str(req)}))


class Holder:
    """N sockets opened by `opener`, each read by a task of its own. Once all are open, one
    pacer pings each every `ping_every_s`, its first ping at a random moment of the first
    period (spread, as clients that connected at different times would be). Not during the
    connects: a ping a minute from 10,000 sockets is 167 `$default` invocations a second, and
    `$connect`s queued behind them outlive their tickets (measured: connects fell from ~30 to
    ~1 a second, then 401s)."""

    def __init__(self, opener: Opener, ping_every_s: float) -> None:
        self.opener = opener
        self.ping_every_s = ping_every_s
        self.tally = Tally()
        self.held: list[Held] = []
        self.http = unlimited_http()
        self._readers: list[asyncio.Task[None]] = []
        self._due: list[tuple[float, int]] = []  # (when, index in held): a heap
        self._offsets = random.Random(25)  # the same spread in every run

    async def connect(self, count: int) -> float:
        """Opens `count` sockets, CONNECTS_AT_ONCE at a time; the seconds it took."""
        gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
        started = time.monotonic()
        await asyncio.gather(*(self._connect_one(i, gate) for i in range(count)))
        return time.monotonic() - started

    async def _connect_one(self, index: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                socket = await self.opener(self.http, index)
            except (aiohttp.ClientError, TimeoutError, OSError):
                self.tally.failed_connects += 1
                return
        held = Held(socket)
        self.held.append(held)
        self.tally.connected += 1
        self._readers.append(asyncio.create_task(held.read(self.tally)))

    async def pace(self) -> None:
        """Sends every ping as it falls due, until cancelled."""
        now = time.monotonic()
        self._due = [(now + self._offsets.uniform(0, self.ping_every_s), index)
                     for index in range(len(self.held))]
        heapq.heapify(self._due)
        req = 0
        while True:
            now = time.monotonic()
            pings = []
            while self._due and self._due[0][0] <= now:
                when, index = heapq.heappop(self._due)
                pings.append(self.held[index].ping(self.tally, req := req + 1))
                heapq.heappush(self._due, (when + self.ping_every_s, index))
            await asyncio.gather(*pings)
            await asyncio.sleep(TICK_S)

    async def await_last_pongs(self) -> None:
        """After the last ping: its pong, for up to PONG_TIMEOUT_S; what never came is missed."""
        deadline = time.monotonic() + PONG_TIMEOUT_S
        while any(h.unanswered for h in self.held) and time.monotonic() < deadline:
            await asyncio.sleep(TICK_S)
        for held in self.held:
            held.give_up_on_old_pings(self.tally, time.monotonic() + PONG_TIMEOUT_S)

    async def close(self) -> float:
        """Closes every socket (the client's side first, as a client that leaves does)."""
        started = time.monotonic()
        for held in self.held:
            held.closing = True
        gate = asyncio.Semaphore(CONNECTS_AT_ONCE * 4)

        async def close_one(held: Held) -> None:
            async with gate:
                await held.socket.close()

        await asyncio.gather(*(close_one(h) for h in self.held), return_exceptions=True)
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self.http.close()
        return time.monotonic() - started


# --- one server, measured ------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    sockets: int
    minutes: float
    ping_every_s: float

    @property
    def sample_every_s(self) -> float:
        return max(1.0, min(10.0, self.minutes * 60 / 10))


async def measure(server: str, pid: int, opener: Opener, plan: Plan, *,
                  trace_memory: bool = False) -> dict[str, Any]:
    """Connect, hold with heartbeats, close: the row of figures for one server.
    `trace_memory`: the server prints its tracemalloc report while the sockets are held."""
    idle = memory_kb(pid)
    peak_rss = idle["VmRSS"]

    def sample() -> None:
        nonlocal peak_rss
        peak_rss = max(peak_rss, memory_kb(pid)["VmRSS"])

    holder = Holder(opener, plan.ping_every_s)
    cpu_before = tree_cpu_seconds(pid)
    print(f"{server}: connecting {plan.sockets} sockets...", file=sys.stderr)
    connect_s = await holder.connect(plan.sockets)
    cpu_connected = tree_cpu_seconds(pid)
    sample()
    print(f"{server}: {holder.tally.connected} connected in {connect_s:.1f} s; holding "
          f"{plan.minutes:g} min...", file=sys.stderr)
    hold_started = time.monotonic()
    pacer = asyncio.create_task(holder.pace())
    while time.monotonic() - hold_started < plan.minutes * 60:
        await asyncio.sleep(min(plan.sample_every_s,
                                plan.minutes * 60 - (time.monotonic() - hold_started)))
        sample()
    hold_s = time.monotonic() - hold_started
    pacer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pacer
    held = memory_kb(pid)
    cpu_held = tree_cpu_seconds(pid)
    workers, workers_kb = rss_of_children_kb(pid)
    await holder.await_last_pongs()
    if trace_memory:
        os.kill(pid, signal.SIGUSR1)
        await asyncio.sleep(TRACE_REPORT_S)
    close_s = await holder.close()
    tally = holder.tally
    ordered = sorted(tally.pong_ms)
    return {
        "server": server, "sockets": plan.sockets, "minutes": plan.minutes,
        "connected": tally.connected, "connect_s": round(connect_s, 1),
        "connects_per_s": round(tally.connected / connect_s, 1) if connect_s else 0.0,
        "rss_idle_mb": round(idle["VmRSS"] / 1024, 1),
        "rss_held_mb": round(held["VmRSS"] / 1024, 1),
        "rss_peak_mb": round(max(peak_rss, held["VmRSS"]) / 1024, 1),
        "kb_per_socket": round((held["VmRSS"] - idle["VmRSS"]) / max(1, tally.connected), 1),
        "uss_held_mb": round(held["Uss"] / 1024, 1),
        "pss_held_mb": round(held["Pss"] / 1024, 1),
        "workers": workers, "workers_rss_mb": round(workers_kb / 1024, 1),
        "pings": tally.pings, "pongs": tally.pongs,
        "pong_p50_ms": round(statistics.median(ordered), 1) if ordered else 0.0,
        "pong_p99_ms": round(ordered[int(len(ordered) * 0.99)], 1) if ordered else 0.0,
        "failed_connects": tally.failed_connects, "closed_early": tally.closed_early,
        "error_frames": tally.error_frames, "missed_pongs": tally.missed_pongs,
        "late_pongs": tally.late_pongs,
        "errors": tally.errors,
        "cpu_connect_s": round(cpu_connected - cpu_before, 1),
        "cpu_hold_per_s": round((cpu_held - cpu_connected) / hold_s, 3),
        "close_s": round(close_s, 1),
        "close_codes": json.dumps(tally.close_codes) if tally.close_codes else "-",
    }


def stack_row(plan: Plan, tracemalloc_frames: int) -> dict[str, Any]:
    with mysql_database() as url:
        migrate(create_engine(parse_database_url(url)))
        started = time.monotonic()
        devices = seed_devices(url, people=plan.sockets)
        print(f"stack: {len(devices)} people seeded in {time.monotonic() - started:.1f} s",
              file=sys.stderr)
        env = {"LOCAL_WORKERS": "4"}
        if tracemalloc_frames:
            env["EPHEMERA_TRACEMALLOC"] = str(tracemalloc_frames)
        with running_stack(url, **env) as stack:
            ws_url = stack.base_url.replace("http", "ws", 1) + "/ws"
            tokens = ticket_signer(TEST_JWT_SECRET)

            def opener(http: aiohttp.ClientSession, index: int
                       ) -> Awaitable[aiohttp.ClientWebSocketResponse]:
                return open_socket(http, ws_url, tokens, devices[index])

            row = asyncio.run(measure("local stack (front process)", stack.process.pid,
                                      opener, plan, trace_memory=bool(tracemalloc_frames)))
            row["disconnect_s"] = round(wait_until_no_connections(url), 1)
        if tracemalloc_frames:
            report = [line for line in stack.output().splitlines() if "tracemalloc:" in line]
            print("\n".join(report), file=sys.stderr)
        return row


def wait_until_no_connections(database_url: str, timeout_s: float = 300) -> float:
    """Seconds until every `$disconnect` has run (no connection row left)."""
    url = parse_database_url(database_url)
    db = pymysql.connect(host=url.host, port=url.port, user=url.user,
                         password=url.password or "", database=url.name, autocommit=True)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s:
            with db.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM connections")
                (left,) = cursor.fetchone()
            if left == 0:
                break
            time.sleep(0.2)
        return time.monotonic() - started
    finally:
        db.close()


# --- the bare aiohttp server -----------------------------------------------------------------

@contextmanager
def bare_server() -> Iterator[tuple[int, str]]:
    """`python -m bench.bare_websocket PORT` in a subprocess, listening."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.bare_websocket", str(port)],
                               cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                with create_connection(("127.0.0.1", port), timeout=1):
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the bare aiohttp server did not start")
            time.sleep(0.1)
        yield process.pid, f"ws://127.0.0.1:{port}/ws"
    finally:
        process.terminate()
        process.wait(30)


def bare_row(plan: Plan) -> dict[str, Any]:
    with bare_server() as (pid, ws_url):
        tokens = ticket_signer(TEST_JWT_SECRET)
        stranger = SeededDevice(new_id(), new_id())

        def opener(http: aiohttp.ClientSession, _index: int
                   ) -> Awaitable[aiohttp.ClientWebSocketResponse]:
            # The same request as the stack gets, ticket and all (the server keeps each
            # socket's upgrade request, URL included, for as long as the socket lives).
            return open_socket(http, ws_url, tokens, stranger)

        row = asyncio.run(measure("bare aiohttp", pid, opener, plan))
        row["disconnect_s"] = 0.0
        return row


# --- the whole sitting ---------------------------------------------------------------------

def comparison(stack: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    """How close the stack's front process comes to the bare server."""
    return {
        "sockets": stack["connected"],
        "front_rss_mb": stack["rss_held_mb"], "bare_rss_mb": bare["rss_held_mb"],
        "rss_ratio": round(stack["rss_held_mb"] / bare["rss_held_mb"], 2),
        "front_kb_per_socket": stack["kb_per_socket"], "bare_kb_per_socket": bare["kb_per_socket"],
        "per_socket_ratio": round(stack["kb_per_socket"] / bare["kb_per_socket"], 2)
        if bare["kb_per_socket"] > 0 else 0.0,
        "errors": stack["errors"] + bare["errors"],
    }


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sockets_held", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=sized(10_000, 100))
    parser.add_argument("--minutes", type=float, default=sized(3.0, 0.1))
    parser.add_argument("--ping-every", type=float, default=sized(60.0, 5.0),
                        help="seconds between one socket's pings (default 60)")
    parser.add_argument("--json", action="store_true", help="the JSON lines only, no tables")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="the front process reports where its memory went")
    parser.add_argument("--skip-bare", action="store_true")
    return parser.parse_args()


def show(name: str, rows: list[dict[str, Any]], only_json: bool) -> None:
    if only_json:
        print(json.dumps({"bench": name, "rows": rows}, ensure_ascii=False))
    else:
        emit(name, rows)


def main() -> None:
    args = arguments()
    files = raise_open_file_limit()
    if files < args.sockets + SPARE_FILES:
        sys.exit(f"{args.sockets} sockets need {args.sockets + SPARE_FILES} open files; this "
                 f"process may have {files} (raise the hard limit: ulimit -Hn)")
    plan = Plan(args.sockets, args.minutes, args.ping_every)
    bare = [] if args.skip_bare else [bare_row(plan)]  # first: it takes a minute, the stack more
    rows = [stack_row(plan, args.tracemalloc), *bare]
    title = (f"sockets held: {plan.sockets} for {plan.minutes:g} min, a ping per socket every "
             f"{plan.ping_every_s:g} s ({os.cpu_count()} cores shared by server and clients)")
    show(title, rows, args.json)
    if len(rows) == 2:
        show("sockets held: the stack's front process beside a bare aiohttp server",
             [comparison(*rows)], args.json)


if __name__ == "__main__":
    main()
