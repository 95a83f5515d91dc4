"""What one `sync` costs when the caller is far behind: memory at its peak (tracemalloc), body
bytes fetched from the database, reply size and time. The safety review measured 83 MB to build
a 99 KB reply from ten full conversations; `sync` now reads a bounded amount per call.
MariaDB, throwaway database; bodies of 16 KB stored straight into the tables."""

from __future__ import annotations

import json
import time
import tracemalloc

from bench.quick import sized
from bench.report import emit
from bench.storage import mysql_database
from bench.worlds import migrated_world
from chalicelib.ids import new_id
from chalicelib.storage import messages
from chalicelib.storage.database import Transaction
from chalicelib.storage.messages import Message

CONVERSATIONS = sized(10, 2)
MESSAGES_EACH = sized(500, 20)
BODY = "x" * 16_000


def fill(txn: Transaction, chat: str, sender: str, now: int) -> None:
    for seq in range(1, MESSAGES_EACH + 1):
        messages.insert_message(txn, Message(new_id(), chat, seq, sender, "bench-device",
                                             f"bench-{seq:06d}", BODY, now, now + 3_600_000))
    txn.execute("UPDATE conversations SET last_seq = %s WHERE id = %s", (MESSAGES_EACH, chat))


def main() -> None:
    with mysql_database() as url:
        world = migrated_world(url)
        db = world.ctx.db
        alice, bob = world.person(), world.person()
        reader = world.device(bob)
        for _ in range(CONVERSATIONS):
            chat = world.chat(alice, bob, world.person())
            db.run_transaction("bench.fill", fill, chat, alice.id, world.ctx.clock.now_ms())
        world.forget_frames()

        tracemalloc.start()
        started = time.perf_counter()
        world.frame(reader, "sync", cursors={}, limit=500, req="bench")
        elapsed_ms = (time.perf_counter() - started) * 1000
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        reply = world.last(reader, "sync")
        db.close()
    emit(f"one sync, {CONVERSATIONS} conversations x {MESSAGES_EACH} messages of 16 KB behind "
         "(MariaDB)", [{
        "peak_memory_mb": round(peak / 2**20, 2),
        "reply_kb": round(len(json.dumps(reply, ensure_ascii=False).encode()) / 1024, 1),
        "messages_in_reply": sum(len(e["messages"]) for e in reply["conversations"]),
        "more_conversations": reply["more_conversations"],
        "time_ms": round(elapsed_ms, 1),
    }])


if __name__ == "__main__":
    main()
