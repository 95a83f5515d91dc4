"""The storage layer's cost on each engine: a send's transaction, a page read, expiry deletes.

MariaDB: a throwaway database on BENCH_MYSQL_URL's server (default the local one), dropped
after. SQLite: a temporary file. One process, one connection, sequential operations.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pymysql

from bench.quick import sized
from bench.report import emit, latency_summary
from chalicelib.config import parse_database_url
from chalicelib.ids import new_id
from chalicelib.storage import conversations, messages, users
from chalicelib.storage.conversations import Conversation, Participant
from chalicelib.storage.database import Database, Transaction
from chalicelib.storage.engines import create_engine
from chalicelib.storage.messages import Message
from chalicelib.storage.migrate import migrate
from chalicelib.storage.users import User

SENDS = sized(2_000, 50)
READS = sized(500, 20)
EXPIRED_ROWS = sized(50_000, 2_000)
BATCH = sized(2_000, 500)
NOW = 1_767_225_600_000


@contextmanager
def mysql_database() -> Iterator[str]:
    server = parse_database_url(os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306")
                                .rstrip("/") + "/mysql")
    name = f"ephemera_bench_{os.getpid()}"
    admin = pymysql.connect(host=server.host, port=server.port, user=server.user,
                            password=server.password or "", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield f"mysql://{server.user}@{server.host}:{server.port}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{directory}/bench.db"


def measure(operation: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        operation()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def bench_engine(url: str) -> list[dict[str, object]]:
    engine = create_engine(parse_database_url(url))
    migrate(engine)
    db = Database(engine)
    alice = User(new_id(), "+14155550101", NOW, NOW, None)
    chat = Conversation(id=new_id(), kind="group", direct_key=None, title=None,
                        ttl_seconds=86_400, last_seq=0, created_by=alice.id, created_at=NOW,
                        updated_at=NOW, activity_at=NOW)

    def setup(txn: Transaction) -> None:
        users.insert_user(txn, alice)
        conversations.insert_conversation(txn, chat)
        conversations.insert_participants(txn, [Participant(chat.id, alice.id, "owner", 0, 0, 0,
                                                            NOW)])

    db.run_transaction("bench.setup", setup)

    def send_txn(txn: Transaction) -> None:
        seq = conversations.allocate_seq(txn, chat.id, alice.id, NOW)
        messages.insert_message(txn, Message(new_id(), chat.id, seq, alice.id, "device",
                                             new_id(), "x" * 200, NOW, NOW + 86_400_000))

    sends = measure(lambda: db.run_transaction("bench.send", send_txn), SENDS)
    reads = measure(lambda: db.run_read("bench.read", messages.messages_after, chat.id,
                                        after_seq=SENDS - 50, now_ms=NOW, limit=50), READS)
    deleted_per_s = _bench_expiry(db, chat.id, alice.id)
    db.close()
    name = engine.name
    return [
        {"engine": name, "operation": "send txn (seq + insert + commit)", **latency_summary(sends)},
        {"engine": name, "operation": "read 50 newest by cursor", **latency_summary(reads)},
        {"engine": name, "operation": f"expiry delete, batches of {BATCH}", "n": EXPIRED_ROWS,
         "p50_ms": "", "p99_ms": "", "max_ms": "", "per_s": deleted_per_s},
    ]


def _bench_expiry(db: Database, conversation_id: str, sender_id: str) -> float:
    rows = [(new_id(), conversation_id, 1_000_000 + i, sender_id, "device", f"e{i:08d}", "x",
             NOW, NOW - 1) for i in range(EXPIRED_ROWS)]

    def insert(txn: Transaction) -> None:
        txn.executemany(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, sender_device_id,"
            " client_msg_id, body, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )

    db.run_transaction("bench.fill", insert)
    started = time.perf_counter()
    deleted = 0
    while batch := db.run_transaction("bench.expire", messages.delete_expired_batch,
                                      now_ms=NOW, limit=BATCH):
        deleted += len(batch)
    return round(deleted / (time.perf_counter() - started), 1)


def main() -> None:
    rows = []
    with mysql_database() as url:
        rows += bench_engine(url)
    with sqlite_database() as url:
        rows += bench_engine(url)
    emit("storage layer, one connection, sequential", rows)


if __name__ == "__main__":
    main()
