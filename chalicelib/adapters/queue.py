"""The fan-out queue: SQS, reached with boto3's client (the SQS JSON protocol).

Only big fan-outs use it (services/fanout.py), so the client is made on first use: a handler
that never enqueues never pays for it. The endpoint comes from the queue's own URL, which is
how the local stack's in-process queue (`http://HOST:PORT/local/sqs/{account}/{name}`) and
SQS itself (`https://sqs.{region}.amazonaws.com/{account}/{name}`) are both reached.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol
from urllib.parse import urlsplit

from chalicelib.errors import ConfigError

# SendMessageBatch takes at most 10 entries, together at most 256 KiB (SQS quotas:
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html).
BATCH_ENTRIES = 10
BATCH_BYTES = 256 * 1024


class FanoutQueue(Protocol):
    def send(self, bodies: list[str]) -> None:
        """Enqueue every body, or raise: a body the queue did not take is never dropped
        silently."""


class QueueRefused(Exception):
    """SQS did not take some messages of a batch."""


def endpoint_of(queue_url: str) -> str:
    """`https://sqs.us-east-1.amazonaws.com/123/q` -> `https://sqs.us-east-1.amazonaws.com`;
    the path's last two segments (account, name) are the queue, what is before is the API."""
    parts = urlsplit(queue_url)
    segments = parts.path.rstrip("/").split("/")
    if len(segments) < 3:
        raise ConfigError(f"FANOUT_QUEUE_URL is not a queue URL: {queue_url!r}")
    return f"{parts.scheme}://{parts.netloc}{'/'.join(segments[:-2])}"


def region_of(queue_url: str) -> str | None:
    labels = (urlsplit(queue_url).hostname or "").split(".")
    return labels[1] if len(labels) >= 4 and labels[0] == "sqs" else None


def batches(bodies: list[str]) -> list[list[str]]:
    """The bodies in order, cut into SendMessageBatch calls by count and by size."""
    calls: list[list[str]] = []
    size = 0
    for body in bodies:
        length = len(body.encode())
        if not calls or len(calls[-1]) == BATCH_ENTRIES or size + length > BATCH_BYTES:
            calls.append([])
            size = 0
        calls[-1].append(body)
        size += length
    return calls


class SqsFanoutQueue:
    """Messages to one SQS queue, in batches of up to ten per request."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url
        self._client: Any = None
        self._first_use = threading.Lock()

    def send(self, bodies: list[str]) -> None:
        client = self._sqs()
        for call in batches(bodies):
            entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(call)]
            reply = client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            refused = reply.get("Failed") or []
            if refused:
                retried = [entries[int(entry["Id"])] for entry in refused
                           if not entry.get("SenderFault")]
                # Failures SQS calls its own are retried once; a sender's fault is a bug.
                if len(retried) < len(refused) or client.send_message_batch(
                        QueueUrl=self.queue_url, Entries=retried).get("Failed"):
                    raise QueueRefused(f"{len(refused)} fan-out message(s) refused")

    def _sqs(self) -> Any:
        if self._client is None:
            with self._first_use:
                if self._client is None:
                    import boto3  # here: only big fan-outs pay for the import

                    self._client = boto3.session.Session().client(
                        "sqs", endpoint_url=endpoint_of(self.queue_url),
                        region_name=region_of(self.queue_url))
        return self._client
