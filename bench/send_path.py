"""The latency a client sees over the local stack, one send at a time (send -> `sent`, send ->
the other side's `message`), for a 1:1 chat and a group, every rate limit lifted (round trips
per action: bench/round_trips.py). MariaDB: a throwaway database on BENCH_MYSQL_URL's server,
dropped after."""

from __future__ import annotations

import json
import time
from typing import Any

from bench.quick import sized
from bench.report import emit, latency_summary
from bench.stack import running_stack
from bench.storage import mysql_database
from tests.e2e.conftest import StackClient

SENDS = sized(300, 12)
GROUP_SIZE = 8


def end_to_end(url: str) -> list[dict[str, Any]]:
    with running_stack(url) as stack:
        client = StackClient(stack)
        rows = [_one_to_one(client), _group(client)]
        client.close_sockets()
        return rows


def _one_to_one(client: StackClient) -> dict[str, Any]:
    alice, bob = client.login("+14155550101"), client.login("+14155550102")
    _, chat, _ = client.request("POST", "/conversations", {"members": ["+14155550102"]},
                                token=alice.access_token)
    sender, receiver = client.open_socket(alice), client.open_socket(bob)
    _drain(receiver)
    to_sent, to_message = [], []
    for i in range(SENDS):
        started = time.perf_counter()
        sender.send(json.dumps({"action": "send", "conversation_id": chat["id"],
                                "client_msg_id": f"bench-1to1-{i:05d}", "body": "x" * 100}))
        _recv_type(sender, "sent")
        to_sent.append((time.perf_counter() - started) * 1000)
        _recv_type(receiver, "message")
        to_message.append((time.perf_counter() - started) * 1000)
    return {"case": "1:1, send -> sent", **latency_summary(to_sent),
            "to_message_p50_ms": latency_summary(to_message)["p50_ms"]}


def _group(client: StackClient) -> dict[str, Any]:
    phones = [f"+1415555{200 + i:04d}" for i in range(GROUP_SIZE + 1)]
    sessions = [client.login(phone) for phone in phones]
    _, group, _ = client.request("POST", "/conversations", {"members": phones[1:],
                                                            "title": "bench"},
                                 token=sessions[0].access_token)
    sockets = [client.open_socket(s) for s in sessions]
    for other in sockets[1:]:
        _drain(other)
    to_all = []
    for i in range(SENDS // 3):
        started = time.perf_counter()
        sockets[0].send(json.dumps({"action": "send", "conversation_id": group["id"],
                                    "client_msg_id": f"bench-group-{i:05d}", "body": "y" * 100}))
        for other in sockets[1:]:
            _recv_type(other, "message")
        to_all.append((time.perf_counter() - started) * 1000)
        _recv_type(sockets[0], "sent")
    return {"case": f"group of {GROUP_SIZE + 1}, send -> last member's message",
            **latency_summary(to_all), "to_message_p50_ms": ""}


def _recv_type(connection: Any, frame_type: str) -> dict[str, Any]:
    while True:
        frame = json.loads(connection.recv(timeout=10))
        if frame["type"] == frame_type:
            return frame


def _drain(connection: Any) -> None:
    try:
        while True:
            connection.recv(timeout=0.3)
    except TimeoutError:
        pass


def main() -> None:
    with mysql_database() as url:
        rows = end_to_end(url)
    emit("send path over the local stack (MariaDB, 2 workers, loopback)", rows)


if __name__ == "__main__":
    main()
