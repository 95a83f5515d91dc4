"""Handler CPU per 1:1 message: the real `$default` function, in this process, invoked as
Lambda invokes it (Chalice's handler on API Gateway's event, the app's middleware with its log
line and its metrics flushed, collaborators from bootstrap: the push adapter, the limiter with
every limit lifted), on MariaDB, pushing to a live local management endpoint. A message costs
its `send` and the receiver's `ack`. Where the target is missed, cProfile says where the time
goes. The log lines and metrics a Lambda writes to its stdout are written to /dev/null.

CPU is this process's (`time.process_time`), as Lambda bills it: every thread's. The management
endpoint runs in a process of its own, so its work is not counted."""

from __future__ import annotations

import cProfile
import json
import multiprocessing
import os
import pstats
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any

from app import ws_message
from bench.cpu import cpu_seconds, database_server_pid
from bench.quick import sized
from bench.report import emit
from bench.stack import unlimited_rates_env
from bench.storage import mysql_database
from chalicelib import bootstrap
from chalicelib.ids import new_id
from chalicelib.observability import logger
from chalicelib.services.context import Caller, Context
from chalicelib.storage.migrate import migrate
from local_stack.events import WebsocketEventConverter
from local_stack.lambdas import LocalLambdaContext
from tests.conftest import TEST_JWT_SECRET
from tests.integration.messaging_world import World
from tests.support.fakes import RecordingPush
from tests.support.management_api import RecordingManagementApi

# Rounds spread over a minute or so, judged by their median: this machine's speed drifts by
# 10-20% from one minute to the next, more than one run of 2,000 messages can average out.
ROUNDS = sized(7, 1)
MESSAGES = sized(1_000, 50)  # per round
WARM_UP = sized(200, 10)
PROFILED = sized(500, 20)
TARGET_MS = 2.5
TOP_FUNCTIONS = 15


@contextmanager
def lambda_environment(database_url: str, management_endpoint: str) -> Iterator[Context]:
    """The `$default` function's collaborators, from the environment as a Lambda has it."""
    settings = {"STAGE": "local", "DATABASE_URL": database_url, "JWT_SECRET": TEST_JWT_SECRET,
                "WS_MANAGEMENT_ENDPOINT": management_endpoint, **unlimited_rates_env()}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    bootstrap.reset()
    try:
        migrate(bootstrap.get_db().engine)
        with open(os.devnull, "w") as devnull, redirect_stdout(devnull):  # EMF metrics
            handler = logger.registered_handler
            previous = handler.setStream(devnull)  # the invocation's log line
            try:
                yield bootstrap.get_context()
            finally:
                handler.setStream(previous)
    finally:
        bootstrap.reset()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class OneToOneChat:
    """Two people with one live connection each, known to the management endpoint."""

    def __init__(self, ctx: Context, api: ManagementProcess) -> None:
        world = World(ctx, RecordingPush())  # set-up only: the handlers push through ctx.push
        alice, bob = world.person(), world.person()
        self.sender, self.receiver = world.device(alice), world.device(bob)
        api.make_live([self.sender.connection_id, self.receiver.connection_id])
        self.conversation_id = world.chat(alice, bob)
        self.ctx = ctx
        self.last_seq = 0
        gateway = WebsocketEventConverter("bench.execute-api.local")
        self._events = {caller.connection_id: gateway.message(
            caller.connection_id, connected_at=int(time.time() * 1000), body="",
            source_ip="192.0.2.1") for caller in (self.sender, self.receiver)}
        self._lambda_context = LocalLambdaContext("websocket_handler")

    def send(self) -> None:
        self._frame(self.sender, {"action": "send", "conversation_id": self.conversation_id,
                                  "client_msg_id": new_id(), "body": "x" * 100})
        self.last_seq += 1

    def ack(self) -> None:
        self._frame(self.receiver, {"action": "ack", "conversation_id": self.conversation_id,
                                    "seq": self.last_seq})

    def _frame(self, caller: Caller, frame: dict[str, Any]) -> None:
        """One `$default` invocation. The event is API Gateway's work, not the Lambda's: one
        per connection, made before, is reused with each frame's body."""
        event = {**self._events[caller.connection_id], "body": json.dumps(frame)}
        ws_message(event, self._lambda_context)


class ManagementProcess:
    """The recording management API in a child process, so that its CPU is not ours."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe()
        self._process = context.Process(target=_serve_management_api, args=(child_end,),
                                        daemon=True)
        self._process.start()
        self.endpoint: str = self._ask(("endpoint",))

    def make_live(self, connection_ids: list[str]) -> None:
        self._ask(("live", connection_ids))

    def pushes(self) -> int:
        return self._ask(("pushes",))

    def stop(self) -> None:
        self._ask(("stop",))
        self._process.join(timeout=10)

    def _ask(self, request: tuple[Any, ...]) -> Any:
        self._pipe.send(request)
        if not self._pipe.poll(10):
            raise TimeoutError("the management API process did not answer")
        return self._pipe.recv()


def _serve_management_api(pipe: Any) -> None:
    api = RecordingManagementApi().start()
    while True:
        request = pipe.recv()
        if request[0] == "endpoint":
            pipe.send(api.endpoint)
        elif request[0] == "live":
            api.live |= set(request[1])
            pipe.send(None)
        elif request[0] == "pushes":
            pipe.send(len(api.calls))
        else:
            api.stop()
            pipe.send(None)
            return


def cpu_per_message(chat: OneToOneChat, api: ManagementProcess,
                    messages: int) -> dict[str, Any]:
    send_s = ack_s = 0.0
    calls_before = api.pushes()
    server = database_server_pid()
    server_before = cpu_seconds(server) if server else 0.0
    for _ in range(messages):
        started = time.process_time()
        chat.send()
        sent = time.process_time()
        chat.ack()
        send_s += sent - started
        ack_s += time.process_time() - sent
    per_message_ms = (send_s + ack_s) * 1000 / messages
    # What the database server spent meanwhile (the machine's whole server: nothing else uses
    # it during a benchmark): RDS's side of the bill, on the same two cores in the ladder.
    server_ms = (cpu_seconds(server) - server_before) * 1000 / messages if server else None
    return {"messages": messages, "cpu_ms_per_message": round(per_message_ms, 3),
            "send_ms": round(send_s * 1000 / messages, 3),
            "ack_ms": round(ack_s * 1000 / messages, 3),
            "database_server_ms": None if server_ms is None else round(server_ms, 3),
            "pushes_per_message": round((api.pushes() - calls_before) / messages, 2),
            "target_ms": TARGET_MS, "met": per_message_ms <= TARGET_MS}


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median CPU per message, with the range of all rounds beside it."""
    ordered = sorted(rounds, key=lambda r: r["cpu_ms_per_message"])
    median = ordered[len(ordered) // 2]
    return {"rounds": len(rounds), **median,
            "messages": sum(r["messages"] for r in rounds),
            "range_ms": f"{ordered[0]['cpu_ms_per_message']}-{ordered[-1]['cpu_ms_per_message']}"}


def profile(chat: OneToOneChat, messages: int) -> pstats.Stats:
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    for _ in range(messages):
        chat.send()
        chat.ack()
    profiler.disable()
    return pstats.Stats(profiler)


def where_time_goes(stats: pstats.Stats, messages: int) -> tuple[list[dict[str, Any]],
                                                                  list[dict[str, Any]]]:
    """Self time per package (chalicelib, botocore, pymysql, ...) and the top functions."""
    by_package: dict[str, float] = {}
    functions = []
    for (filename, line, name), (_, calls, self_s, cumulative_s, _) in stats.stats.items():
        package = _package_of(filename)
        by_package[package] = by_package.get(package, 0.0) + self_s
        functions.append({"function": f"{package}:{os.path.basename(filename)}:{line}:{name}",
                          "calls_per_message": round(calls / messages, 1),
                          "self_ms_per_message": round(self_s * 1000 / messages, 3),
                          "cumulative_ms_per_message": round(cumulative_s * 1000 / messages,
                                                             3)})
    total_s = sum(by_package.values()) or 1.0
    packages = [{"package": package, "share_pct": round(100 * s / total_s, 1),
                 "self_ms_per_message": round(s * 1000 / messages, 3)}
                for package, s in sorted(by_package.items(), key=lambda item: -item[1])]
    top = sorted(functions, key=lambda f: -f["self_ms_per_message"])[:TOP_FUNCTIONS]
    return packages[:TOP_FUNCTIONS], top


def _package_of(filename: str) -> str:
    """The top-level package a file belongs to ("<built-in>" for C functions)."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/chalicelib/" in filename:
        return "chalicelib"
    if filename.startswith("~") or filename.startswith("<"):
        return "<built-in>"
    return "stdlib:" + os.path.basename(filename).removesuffix(".py")


@contextmanager
def warmed_up_chat(warm_up: int) -> Iterator[tuple[OneToOneChat, ManagementProcess]]:
    """The chat on a throwaway MariaDB database, `warm_up` messages sent and acked, with the
    management endpoint it pushes to."""
    api = ManagementProcess()
    try:
        with mysql_database() as url, lambda_environment(url, api.endpoint) as ctx:
            chat = OneToOneChat(ctx, api)
            for _ in range(warm_up):
                chat.send()
                chat.ack()
            try:
                yield chat, api
            finally:
                ctx.db.close()
    finally:
        api.stop()


def main() -> None:
    with warmed_up_chat(WARM_UP) as (chat, api):
        result = median_of([cpu_per_message(chat, api, MESSAGES) for _ in range(ROUNDS)])
        profiled = None if result["met"] else where_time_goes(profile(chat, PROFILED),
                                                              PROFILED)
    emit(f"handler CPU per 1:1 message (send + ack, $default invoked as Lambda invokes it, "
         f"MariaDB, pushes to a live local management endpoint; the median of {ROUNDS} "
         "rounds)", [result])
    if profiled is not None:
        packages, top = profiled
        # cProfile's own cost inflates every figure several times over: read the shares.
        emit("where the handler CPU goes: self time per package (cProfile, inflated by "
             "its own overhead: read the shares)", packages)
        emit("where the handler CPU goes: top functions by self time (cProfile)", top)


if __name__ == "__main__":
    main()
