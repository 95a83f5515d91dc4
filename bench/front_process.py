"""The local stack's front process: its CPU per push (a management-API POST until the frame is on
the socket) and per client frame (until its `$default` event is dispatched to a worker).

`python -m local_stack` runs as it does for `make run`, on a throwaway MariaDB database
(BENCH_MYSQL_URL's server). CPU is the front process's own user + system time from
/proc/<pid>/stat, so the workers' handler time is not counted, split into the event loop's
thread and the others (the worker pool's manager and queue feeder); its idle cost (the limits
loop, the schedule) over the same time is subtracted. Each frame is a `ping` whose reply is one
push, so the cost per frame is measured as (frame + its pong) minus a push. Closed loop, one
socket. BENCH_QUICK=1: a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pymysql
import urllib3
from websockets.sync.client import ClientConnection, connect

from bench.report import emit
from bench.storage import mysql_database
from chalicelib.adapters.push import ApiGatewayPush
from chalicelib.config import parse_database_url
from tests.support.ports import free_port

QUICK = bool(os.environ.get("BENCH_QUICK"))
ROUNDS = 300 if QUICK else 3_000
IDLE_S = 1.0 if QUICK else 3.0
ROOT = Path(__file__).resolve().parents[1]
PHONE = "+14155550199"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _ticks(stat_path: Path) -> int:
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def cpu_s(pid: int) -> tuple[float, float]:
    """User + system CPU seconds of one process (not its children): its event loop's thread
    (the main one) and all its other threads (the worker pool's manager and queue feeder)."""
    total = _ticks(Path(f"/proc/{pid}/stat"))
    loop = _ticks(Path(f"/proc/{pid}/task/{pid}/stat"))
    return loop / CLOCK_TICKS, (total - loop) / CLOCK_TICKS


@contextmanager
def local_stack(database_url: str) -> Iterator[tuple[subprocess.Popen, str]]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": database_url,
           "JWT_SECRET": "bench-secret-" + "x" * 40, "LOCAL_WORKERS": "2",
           "RATE_FRAMES_PER_CONNECTION": f"{ROUNDS * 10}/60"}
    stack = subprocess.Popen([sys.executable, "-m", "local_stack"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        http = urllib3.PoolManager()
        for _ in range(300):
            try:
                if http.request("GET", f"{base_url}/health", retries=False).status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("the local stack did not get ready")
        yield stack, base_url
    finally:
        stack.terminate()
        stack.wait(30)


def open_socket(base_url: str) -> ClientConnection:
    http = urllib3.PoolManager()

    def call(method: str, path: str, body: object = None, token: str = "") -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reply = http.request(method, base_url + path, json=body, headers=headers)
        assert reply.status < 300, (path, reply.status)
        return json.loads(reply.data)

    challenge = call("POST", "/auth/otp", {"phone": PHONE})
    code = call("GET", f"/dev/outbox?phone={PHONE.replace('+', '%2B')}")["messages"][0]["code"]
    session = call("POST", "/auth/verify", {"challenge_id": challenge["challenge_id"],
                                            "code": code, "device_name": "bench"})
    ticket = call("POST", "/ws/ticket", token=session["access_token"])
    return connect(f"{ticket['url']}?ticket={ticket['ticket']}", open_timeout=10, legacy=True)


def only_connection_id(database_url: str) -> str:
    url = parse_database_url(database_url)
    db = pymysql.connect(host=url.host, port=url.port, user=url.user,
                         password=url.password or "", database=url.name)
    try:
        with db.cursor() as cursor:
            cursor.execute("SELECT id FROM connections")
            (row,) = cursor.fetchall()
            return row[0]
    finally:
        db.close()


def front_cpu_ms_per_round(pid: int, rounds: int, one_round: Callable[[int], None],
                           idle_cpu_per_s: float) -> tuple[float, float]:
    """CPU ms per round: the event loop's thread (less its idle cost), the other threads."""
    for i in range(20):  # warm up
        one_round(i)
    (loop, others), wall = cpu_s(pid), time.monotonic()
    for i in range(rounds):
        one_round(i)
    loop_after, others_after = cpu_s(pid)
    loop_used = loop_after - loop - idle_cpu_per_s * (time.monotonic() - wall)
    # A thread that ends takes its CPU out of /proc's per-thread figures, and the idle
    # estimate is an estimate: a small negative difference is noise, read as nothing.
    return (max(0.0, loop_used) / rounds * 1000,
            max(0.0, others_after - others) / rounds * 1000)


def row(what: str, loop_ms: float, others_ms: float) -> dict[str, object]:
    return {"what": what, "rounds": ROUNDS, "cpu_ms": round(loop_ms + others_ms, 3),
            "loop_thread_ms": round(loop_ms, 3), "other_threads_ms": round(others_ms, 3)}


def difference(more: tuple[float, float], less: tuple[float, float]) -> tuple[float, float]:
    """What the frame costs beyond the push, per thread group. A cost is never below zero: two
    noisy figures a few microseconds apart (the other threads' share is near nothing since the
    workers are fed over pipes) can differ by a negative amount, which is noise, shown as 0."""
    return max(0.0, more[0] - less[0]), max(0.0, more[1] - less[1])


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")  # the stack accepts any signature
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mysql_database() as database_url, local_stack(database_url) as (stack, base_url):
        client_socket = open_socket(base_url)
        connection_id = only_connection_id(database_url)
        push = ApiGatewayPush(f"{base_url}/local")

        def one_push(i: int) -> None:
            assert push.send(connection_id, {"type": "pong", "req": str(i)})
            client_socket.recv(timeout=10)

        def one_frame(i: int) -> None:
            client_socket.send(json.dumps({"action": "ping", "req": str(i)}))
            client_socket.recv(timeout=10)

        idle = sum(cpu_s(stack.pid))
        time.sleep(IDLE_S)
        idle_per_s = (sum(cpu_s(stack.pid)) - idle) / IDLE_S
        push_loop, push_others = front_cpu_ms_per_round(stack.pid, ROUNDS, one_push, idle_per_s)
        frame_loop, frame_others = front_cpu_ms_per_round(stack.pid, ROUNDS, one_frame,
                                                          idle_per_s)
        client_socket.close()

    emit("local stack front process, CPU per event (ms; workers not counted)", [
        row("push (management POST -> frame on the socket)", push_loop, push_others),
        row("client frame -> $default dispatched, and its pong", frame_loop, frame_others),
        row("client frame -> $default dispatched (the difference)",
            *difference((frame_loop, frame_others), (push_loop, push_others))),
        {"what": "idle (limits loop, schedule), per second", "rounds": "",
         "cpu_ms": round(idle_per_s * 1000, 3), "loop_thread_ms": "", "other_threads_ms": ""},
    ])


if __name__ == "__main__":
    main()
