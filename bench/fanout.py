"""Fan-out to big groups on the local stack (MariaDB), with and without the async path.

For each audience (1 device, 1,000 and 5,000 devices of one group) and each path (the send's
own invocation pushes to everyone, or the fan-out queue does above FANOUT_ASYNC_ABOVE), it
connects every device, sends a few messages one after another and prints: how long the
sender waited for `sent`, how long until the last device had the message (p50 and max over
the sends), and how many copies each device got. Seeded straight into the database
(tests/support/crowd.py); every rate limit lifted.

    python -m bench.fanout            (several minutes: it connects 12,000 sockets in all)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

import urllib3

from bench.quick import sized
from bench.report import emit
from bench.stack import running_stack
from bench.storage import mysql_database
from chalicelib.config import parse_database_url
from chalicelib.storage.engines import create_engine
from chalicelib.storage.migrate import migrate
from tests.conftest import TEST_JWT_SECRET
from tests.support.crowd import Crowd, seed_group

# (members, devices each): one receiving device (the 1:1 baseline), 1,000 and 5,000 devices.
AUDIENCES = sized([(1, 1), (500, 2), (1000, 5)], [(1, 1), (30, 2)])
SENDS = sized(5, 2)
NEVER_ASYNC = "1000000000"
PATHS = {"in the send's invocation": {"FANOUT_ASYNC_ABOVE": NEVER_ASYNC},
         "fan-out queue": {"FANOUT_ASYNC_ABOVE": sized("50", "10")}}


async def measure(ws_url: str, database_url: str, members: int,
                  devices_each: int) -> dict[str, Any]:
    group = seed_group(database_url, members=members, devices_each=devices_each)
    async with Crowd(ws_url, group, TEST_JWT_SECRET) as crowd:
        warm = await crowd.send_and_time("warm-up")  # every container warm, as in a busy hour
        await crowd.wait_until_everyone_has(warm, timeout_s=120)
        sent_ms, last_ms, copies = [], [], []
        for n in range(SENDS):
            delivered = await crowd.send_and_time(f"message {n}")
            last_ms.append(await crowd.wait_until_everyone_has(delivered, timeout_s=120) * 1000)
            sent_ms.append(delivered.sent_after_s * 1000)
            await asyncio.sleep(0.3)  # a stray second copy would show by now
            copies.append(crowd.copies_per_device(delivered.message_id))
        return {
            "devices": members * devices_each,
            "connect_s": round(crowd.connect_s, 1),
            "sent_p50_ms": round(statistics.median(sent_ms), 1),
            "sent_max_ms": round(max(sent_ms), 1),
            "last_device_p50_ms": round(statistics.median(last_ms), 1),
            "last_device_max_ms": round(max(last_ms), 1),
            "lost": sum(c[0] for c in copies),
            "duplicated": sum(n for c in copies for k, n in c.items() if k > 1),
        }


def queue_stats(base_url: str) -> dict[str, Any]:
    return json.loads(urllib3.request("GET", f"{base_url}/local/sqs/@stats").data)


def main() -> None:
    rows = []
    for path, env in PATHS.items():
        with mysql_database() as url:
            migrate(create_engine(parse_database_url(url)))
            with running_stack(url, LOCAL_SCHEDULE="off", **env) as stack:
                ws_url = stack.base_url.replace("http", "ws", 1) + "/ws"
                for members, devices_each in AUDIENCES:
                    print(f"{path}: {members * devices_each} device(s)...", file=sys.stderr)
                    started, queued = time.monotonic(), queue_stats(stack.base_url)["sent"]
                    row = asyncio.run(measure(ws_url, url, members, devices_each))
                    rows.append({"path": path, **row, "queued_messages":
                                 queue_stats(stack.base_url)["sent"] - queued,
                                 "run_s": round(time.monotonic() - started, 1)})
    emit("fan-out to one group on the local stack (MariaDB, 2 cores shared by everything)", rows)


if __name__ == "__main__":
    main()
