"""The local stack's fan-out queue keeps SQS's semantics: SQS's JSON API for the app's boto3
client, messages deleted only when the function returns, failed ones back after their
visibility timeout with a higher receive count, and the dead-letter list after the last try."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import boto3
import pytest
from aiohttp import web

from local_stack.queue import ACCOUNT, LocalQueue
from tests.support.ports import free_port

NAME = "ephemera-local-fanout"


class FakePool:
    """Runs the subscribed "function" in the test's process: records each event and raises
    while `failures` is positive."""

    def __init__(self, failures: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self.failures = failures

    async def invoke(self, function: str, event: dict[str, Any]) -> None:
        self.events.append(event)
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("the worker crashed mid-batch")

    def receive_counts(self) -> list[list[str]]:
        return [[r["attributes"]["ApproximateReceiveCount"] for r in e["Records"]]
                for e in self.events]


def run_pollers(queue: LocalQueue, pool: FakePool, until: Any, pollers: int = 1) -> None:
    async def main() -> None:
        tasks = [asyncio.create_task(queue.poll_forever(pool, "fanout_worker"))
                 for _ in range(pollers)]
        try:
            for _ in range(400):
                if until():
                    break
                await asyncio.sleep(0.01)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def queue_with(bodies: list[str], **settings: Any) -> LocalQueue:
    async def make() -> LocalQueue:  # its Event belongs to the loop that runs the pollers
        return LocalQueue(NAME, **settings)

    queue = asyncio.run(make())
    for body in bodies:
        queue._accept(body)
    return queue


def test_a_message_goes_to_the_function_once_and_is_deleted_when_it_returns():
    queue = queue_with(["one", "two"], batch_size=1)
    pool = FakePool()

    run_pollers(queue, pool, until=lambda: queue.stats.deleted == 2)

    assert [r["body"] for e in pool.events for r in e["Records"]] == ["one", "two"]
    assert queue.stats.redelivered == 0
    assert pool.events[0]["Records"][0]["eventSource"] == "aws:sqs"


def test_a_failed_message_comes_back_after_its_visibility_timeout_with_a_higher_count():
    queue = queue_with(["batch"], visibility_timeout_s=0.05)
    pool = FakePool(failures=1)

    run_pollers(queue, pool, until=lambda: queue.stats.deleted == 1)

    assert pool.receive_counts() == [["1"], ["2"]]
    assert queue.stats.redelivered == 1 and queue.dead_letters == []


def test_after_its_last_try_a_message_moves_to_the_dead_letters():
    queue = queue_with(["poison"], visibility_timeout_s=0.02, max_receives=3)
    pool = FakePool(failures=100)

    run_pollers(queue, pool, until=lambda: queue.dead_letters)

    assert pool.receive_counts() == [["1"], ["2"], ["3"]]
    assert [m.body for m in queue.dead_letters] == ["poison"]
    assert queue.stats.deleted == 0


def test_a_message_in_flight_is_not_given_to_a_second_poller():
    queue = queue_with(["only once"], visibility_timeout_s=30)

    class SlowPool(FakePool):
        async def invoke(self, function: str, event: dict[str, Any]) -> None:
            await super().invoke(function, event)
            await asyncio.sleep(0.1)

    pool = SlowPool()
    run_pollers(queue, pool, until=lambda: queue.stats.deleted == 1, pollers=3)

    assert len(pool.events) == 1


def test_the_apps_boto3_client_sends_batches_to_it():
    queue = queue_with([])
    port = free_port()

    async def serve_and_send() -> None:
        application = web.Application()
        queue.add_routes(application.router)
        runner = web.AppRunner(application)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        try:
            sqs = boto3.client("sqs", endpoint_url=f"{base}/local/sqs", region_name="us-east-1")
            reply = await asyncio.to_thread(
                sqs.send_message_batch, QueueUrl=queue.url(base),
                Entries=[{"Id": str(n), "MessageBody": json.dumps({"n": n})} for n in range(3)])
            assert len(reply["Successful"]) == 3
            with pytest.raises(sqs.exceptions.ClientError):
                await asyncio.to_thread(sqs.send_message, QueueUrl=f"{base}/local/sqs/"
                                        f"{ACCOUNT}/another-queue", MessageBody="x")
        finally:
            await runner.cleanup()

    asyncio.run(serve_and_send())

    assert queue.stats.sent == 3
