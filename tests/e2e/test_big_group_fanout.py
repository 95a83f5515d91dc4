"""A 500-member group with two devices each, on the local stack: the sender's message goes
through the fan-out queue, every device gets it exactly once, and a worker that fails
mid-batch loses nothing when the queue delivers the batch again. (How fast: bench/fanout.py.)"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator

import pytest
import urllib3

from bench.stack import running_stack
from chalicelib.config import parse_database_url
from chalicelib.services.fanout import CONNECTIONS_PER_MESSAGE
from chalicelib.storage.database import Database
from chalicelib.storage.engines import create_engine
from tests.conftest import TEST_JWT_SECRET
from tests.e2e.conftest import RunningStack, migrated_database
from tests.support.crowd import Crowd, seed_group

MEMBERS, DEVICES_EACH = 500, 2
VISIBILITY_S = 1  # how soon a failed batch comes back (SQS: the queue's visibility timeout)


@pytest.fixture(scope="module")
def crowd_database(mysql_server) -> Iterator[str]:
    with migrated_database(mysql_server, "ephemera_e2e_crowd") as url:
        yield url


@pytest.fixture(scope="module")
def crowd_stack(crowd_database) -> Iterator[RunningStack]:
    with running_stack(crowd_database, LOCAL_QUEUE_VISIBILITY_S=str(VISIBILITY_S),
                       LOCAL_SCHEDULE="off") as stack:
        yield stack


def stack_call(stack: RunningStack, method: str, path: str, body: dict | None = None) -> dict:
    reply = urllib3.request(method, stack.base_url + path,
                            body=json.dumps(body) if body is not None else None)
    assert reply.status < 300, reply.data
    return json.loads(reply.data) if reply.data else {}


def ws_url(stack: RunningStack) -> str:
    return stack.base_url.replace("http", "ws", 1) + "/ws"


def test_every_device_of_a_500_member_group_gets_the_message_exactly_once(crowd_stack,
                                                                           crowd_database):
    group = seed_group(crowd_database, members=MEMBERS, devices_each=DEVICES_EACH)
    queued_before = stack_call(crowd_stack, "GET", "/local/sqs/@stats")["sent"]

    async def run() -> Counter:
        async with Crowd(ws_url(crowd_stack), group, TEST_JWT_SECRET) as crowd:
            assert len(crowd.members) == MEMBERS * DEVICES_EACH
            delivered = await crowd.send_and_time("hello, everyone")
            await crowd.wait_until_everyone_has(delivered)
            await asyncio.sleep(0.5)  # time for a stray second copy to show up
            return crowd.copies_per_device(delivered.message_id)

    assert asyncio.run(run()) == Counter({1: MEMBERS * DEVICES_EACH})
    stats = stack_call(crowd_stack, "GET", "/local/sqs/@stats")
    # It went through the queue: one message per 200 connections at least.
    assert stats["sent"] - queued_before >= MEMBERS * DEVICES_EACH // CONNECTIONS_PER_MESSAGE
    assert stats["redelivered"] == 0 and stats["dead_letters"] == 0


def test_a_worker_that_fails_mid_batch_loses_nothing_when_the_batch_comes_back(crowd_stack,
                                                                              crowd_database):
    group = seed_group(crowd_database, members=MEMBERS, devices_each=DEVICES_EACH)
    db = Database(create_engine(parse_database_url(crowd_database)))

    async def run() -> tuple[Counter, int]:
        async with Crowd(ws_url(crowd_stack), group, TEST_JWT_SECRET) as crowd:
            unlucky = connection_of(db, crowd.members[-1].device.device_id)
            # Every attempt of the push to one device fails: its batch's worker pushes the
            # rest, then fails, and the queue brings the whole batch back.
            stack_call(crowd_stack, "POST", "/local/@faults",
                       {"connection_id": unlucky, "status": 500, "times": 3})
            redelivered_before = stack_call(crowd_stack, "GET", "/local/sqs/@stats")[
                "redelivered"]
            delivered = await crowd.send_and_time("through a failure")
            await crowd.wait_until_everyone_has(delivered, timeout_s=30)
            await asyncio.sleep(0.5)
            stats = stack_call(crowd_stack, "GET", "/local/sqs/@stats")
            return (crowd.copies_per_device(delivered.message_id),
                    stats["redelivered"] - redelivered_before)

    try:
        copies, redelivered = asyncio.run(run())
    finally:
        db.close()
    assert redelivered >= 1
    assert sum(copies.values()) == MEMBERS * DEVICES_EACH  # every device has it: none lost
    # The batch's other devices got it twice (clients keep one copy per message_id); a
    # batch carries at most 200 connections.
    assert copies[2] < CONNECTIONS_PER_MESSAGE
    assert set(copies) <= {1, 2}


def connection_of(db: Database, device_id: str) -> str:
    def select(txn):
        txn.execute("SELECT id FROM connections WHERE device_id = %s", (device_id,))
        return txn.fetchall()

    rows = db.run_read("t", select)
    assert len(rows) == 1
    return rows[0]["id"]
