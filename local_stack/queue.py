"""`LocalQueue`: the fan-out queue, in the stack's own process, with SQS's semantics.

Its API is the subset of SQS's JSON protocol the app uses (SendMessage, SendMessageBatch,
GetQueueAttributes) at `/local/sqs`, so the app's boto3 client reaches it as it reaches SQS
(FANOUT_QUEUE_URL = `http://HOST:PORT/local/sqs/000000000000/ephemera-local-fanout`).

It also plays Lambda's event source mapping: pollers take up to `batch_size` visible messages,
hide them for `visibility_timeout_s`, and invoke the subscribed function (`fanout_worker`) in
worker processes of its own, with an SQS event. A message is deleted when the function returns;
when it raises (or its container dies), the message becomes visible again once its visibility
timeout ends and is delivered again with a higher `ApproximateReceiveCount`; after
`max_receives` deliveries it moves to the dead-letter list, as a redrive policy's
maxReceiveCount does. `GET /local/sqs/@stats` shows the counts (tests and benchmarks read it).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from local_stack.lambdas import LambdaPool

log = logging.getLogger("local_stack")

PATH = "/local/sqs"
STATS_PATH = "/local/sqs/@stats"
ACCOUNT = "000000000000"
REGION = "us-east-1"
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
MAX_BATCH_ENTRIES = 10


@dataclass
class LocalMessage:
    id: str
    body: str
    sent_at_ms: int
    receive_count: int = 0
    visible_at: float = 0.0  # monotonic seconds
    receipt_handle: str = ""


@dataclass
class QueueStats:
    sent: int = 0
    received: int = 0
    deleted: int = 0
    redelivered: int = 0
    failed: int = 0
    dead_letters: int = 0


@dataclass
class LocalQueue:
    """One queue and the function subscribed to it."""

    name: str
    visibility_timeout_s: float = 30.0
    max_receives: int = 5
    batch_size: int = 1
    stats: QueueStats = field(default_factory=QueueStats)

    def __post_init__(self) -> None:
        self._messages: dict[str, LocalMessage] = {}  # in the order they were sent
        self.dead_letters: list[LocalMessage] = []
        self._arrived = asyncio.Event()
        self._sequence = itertools.count()

    @property
    def arn(self) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.name}"

    def url(self, base_url: str) -> str:
        return f"{base_url}{PATH}/{ACCOUNT}/{self.name}"

    # --- the API ----------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(PATH, self.api)
        router.add_post(PATH + "/", self.api)
        router.add_get(STATS_PATH, self.get_stats)

    async def api(self, request: web.Request) -> web.Response:
        operation = request.headers.get("X-Amz-Target", "").removeprefix("AmazonSQS.")
        try:
            params = json.loads(await request.read() or b"{}")
        except ValueError:
            return _error("InvalidParameterValue", "the body is not JSON")
        if not isinstance(params, dict):
            return _error("InvalidParameterValue", "the body is not a JSON object")
        if not str(params.get("QueueUrl", "")).endswith(f"/{ACCOUNT}/{self.name}"):
            return _error("QueueDoesNotExist", "The specified queue does not exist.")
        if operation == "SendMessage":
            return _reply(self._accept(params.get("MessageBody")))
        if operation == "SendMessageBatch":
            return self._send_batch(params.get("Entries"))
        if operation == "GetQueueAttributes":
            return _reply({"Attributes": self.attributes()})
        return _error("UnsupportedOperation", f"{operation or 'no operation'} is not supported")

    def _send_batch(self, entries: Any) -> web.Response:
        if not isinstance(entries, list) or not entries:
            return _error("EmptyBatchRequest", "There should be at least one entry.")
        if len(entries) > MAX_BATCH_ENTRIES:
            return _error("TooManyEntriesInBatchRequest", "At most 10 entries.")
        successful = [{"Id": entry.get("Id"), **self._accept(entry.get("MessageBody"))}
                      for entry in entries]
        return _reply({"Successful": successful, "Failed": []})

    def _accept(self, body: Any) -> dict[str, str]:
        text = body if isinstance(body, str) else ""
        message = LocalMessage(id=str(uuid.uuid4()), body=text,
                               sent_at_ms=int(time.time() * 1000))
        self._messages[message.id] = message
        self.stats.sent += 1
        self._arrived.set()
        return {"MessageId": message.id,
                "MD5OfMessageBody": hashlib.md5(text.encode()).hexdigest()}

    def _hidden(self) -> int:
        """Messages taken by a poller (or failed) whose visibility timeout has not ended."""
        now = time.monotonic()
        return sum(1 for message in self._messages.values() if message.visible_at > now)

    def attributes(self) -> dict[str, str]:
        hidden = self._hidden()
        return {"ApproximateNumberOfMessages": str(len(self._messages) - hidden),
                "ApproximateNumberOfMessagesNotVisible": str(hidden),
                "VisibilityTimeout": str(int(self.visibility_timeout_s)),
                "QueueArn": self.arn}

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response({"queue": self.name, "stored": len(self._messages),
                                  "in_flight": self._hidden(), **vars(self.stats)})

    # --- the event source mapping -------------------------------------------------------------

    async def poll_forever(self, pool: LambdaPool, function: str) -> None:
        """One poller: takes visible messages, runs `function` on them, deletes them when it
        returns. Run several for concurrency, as Lambda scales its pollers."""
        while True:
            batch = self._take_visible()
            if not batch:
                await self._wait_for_work()
                continue
            try:
                await pool.invoke(function, self._event(batch))
            except Exception:  # noqa: BLE001 - the messages come back after their timeout
                self.stats.failed += 1
                log.warning("%s failed on %d message(s); they come back in %.0f s",
                            function, len(batch), self.visibility_timeout_s)
                continue  # hidden until their visibility timeout ends
            for message in batch:
                self._messages.pop(message.id, None)
                self.stats.deleted += 1

    def _take_visible(self) -> list[LocalMessage]:
        now = time.monotonic()
        batch: list[LocalMessage] = []
        for message in list(self._messages.values()):
            if len(batch) == self.batch_size:
                break
            if message.visible_at > now:  # a poller has it, or it failed and waits
                continue
            if message.receive_count >= self.max_receives:
                self._to_dead_letters(message)
                continue
            message.receive_count += 1
            message.visible_at = now + self.visibility_timeout_s
            message.receipt_handle = f"{message.id}#{next(self._sequence)}"
            self.stats.received += 1
            if message.receive_count > 1:
                self.stats.redelivered += 1
            batch.append(message)
        return batch

    def _to_dead_letters(self, message: LocalMessage) -> None:
        del self._messages[message.id]
        self.dead_letters.append(message)
        self.stats.dead_letters += 1
        log.warning("a %s message moved to its dead-letter queue after %d tries",
                    self.name, message.receive_count)

    async def _wait_for_work(self) -> None:
        """Until a message arrives or the next hidden one becomes visible."""
        self._arrived.clear()
        hidden = [m.visible_at for m in self._messages.values()]
        timeout = max(0.01, min(hidden) - time.monotonic()) if hidden else None
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout)
        except TimeoutError:
            pass

    def _event(self, batch: list[LocalMessage]) -> dict[str, Any]:
        """What Lambda hands an SQS-triggered function."""
        return {"Records": [{
            "messageId": message.id,
            "receiptHandle": message.receipt_handle,
            "body": message.body,
            "attributes": {
                "ApproximateReceiveCount": str(message.receive_count),
                "SentTimestamp": str(message.sent_at_ms),
                "SenderId": ACCOUNT,
                "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
            },
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(message.body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": REGION,
        } for message in batch]}


def _reply(document: dict[str, Any]) -> web.Response:
    return web.Response(body=json.dumps(document), content_type=JSON_CONTENT_TYPE)


def _error(code: str, message: str) -> web.Response:
    return web.Response(status=400, content_type=JSON_CONTENT_TYPE,
                        body=json.dumps({"__type": f"com.amazonaws.sqs#{code}",
                                         "message": message}),
                        headers={"x-amzn-query-error": f"AWS.SimpleQueueService.{code};Sender"})
