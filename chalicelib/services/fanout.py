"""Big fan-outs off the caller's path: the plan of what is pushed now and what is queued.

A send to a group pushes every frame to every device of every member. Inside the sender's own
invocation that is one management-API call per device, so a 500-member group keeps the sender
waiting for about a thousand pushes, and a few thousand devices outlast the Lambda timeout.
Above `async_above` target connections, the caller's own connection is still answered at once
and the rest is queued: one queue message carries the frames and up to
CONNECTIONS_PER_MESSAGE connections, and the fan-out worker (`delivery.work_fanout`) pushes
them concurrently. A send to a group of more than `async_above` members does not even read
the members' connections: it queues the frames with the conversation (`group_send_bodies`),
and the worker reads them and queues their batches.

Queued frames may reach a device twice: a batch whose pushes did not all succeed is delivered
again by the queue, and its pushes are repeated. That is harmless by contract (clients
de-duplicate by `message_id`, and `expired`, `member` and receipt frames are idempotent), and
it is counted (FanoutRedeliveredPushes). A connection's frames stay in their order within a
queue message; frames split across messages may arrive out of order, which receivers handle as
they do any push (by `seq`, syncing a gap).

Nothing here does I/O: the plan is pure, so it is tested on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from chalicelib.wire import Frame

ASYNC_ABOVE = 50  # FANOUT_ASYNC_ABOVE
CONNECTIONS_PER_MESSAGE = 200
# A queue message is at most 256 KiB; the frames get this much of it, the connection ids
# (200 x at most 128 bytes) and the envelope the rest.
FRAMES_BYTES_PER_MESSAGE = 200 * 1024


def queue_name(stage: str) -> str:
    """The stage's fan-out queue (infra/stack.yaml makes it; app.py subscribes to it)."""
    return f"ephemera-{stage}-fanout"


@dataclass
class Plan:
    """Frames to push in this invocation, and queue message bodies for the rest."""

    now: list[tuple[str, Frame]] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    queued_connections: int = 0


def plan(frames: list[tuple[str, Frame]], *, answering: str | None,
         async_above: int) -> Plan:
    """Everything now when at most `async_above` connections other than `answering` (the
    caller's own, whose answer never waits on a queue) get frames; otherwise the answer now
    and the others queued, grouped by the frames they get."""
    targets = {connection_id for connection_id, _ in frames} - {answering}
    if len(targets) <= async_above:
        return Plan(now=frames)
    result = Plan(now=[(cid, frame) for cid, frame in frames if cid == answering],
                  queued_connections=len(targets))
    for frames_of_group, connection_ids in _by_frames(frames, answering):
        result.queued += _bodies(frames_of_group, connection_ids)
    return result


def _by_frames(frames: list[tuple[str, Frame]],
               answering: str | None) -> list[tuple[list[Frame], list[str]]]:
    """Connections grouped by the frames they get, in order. Frames are told apart by
    identity: callers build one frame and address it to many connections, so a group's
    receivers share one key (equal frames built twice only cost a message more)."""
    queues: dict[str, list[Frame]] = {}
    for connection_id, frame in frames:
        if connection_id != answering:
            queues.setdefault(connection_id, []).append(frame)
    groups: dict[tuple[int, ...], tuple[list[Frame], list[str]]] = {}
    for connection_id, queue in queues.items():
        key = tuple(id(frame) for frame in queue)
        groups.setdefault(key, (queue, []))[1].append(connection_id)
    return list(groups.values())


def _bodies(frames: list[Frame], connection_ids: list[str]) -> list[str]:
    """Queue message bodies: the frames cut by size, each part for the connections cut by
    count; every connection gets every part, parts in order."""
    return [
        f'{{"frames":[{",".join(part)}],"connections":'
        f'{json.dumps(connection_ids[start:start + CONNECTIONS_PER_MESSAGE])}}}'
        for part in _frame_parts(frames)
        for start in range(0, len(connection_ids), CONNECTIONS_PER_MESSAGE)
    ]


def group_send_bodies(frames: list[Frame], conversation_id: str, sender_id: str) -> list[str]:
    """A send to a big group, queued before anyone's connection is read: the worker reads the
    members' connections itself (all but the sender's own and those who block the sender)."""
    addressed = json.dumps({"conversation_id": conversation_id, "sender_id": sender_id})[1:-1]
    return [f'{{"frames":[{",".join(part)}],{addressed}}}' for part in _frame_parts(frames)]


def _frame_parts(frames: list[Frame]) -> list[list[str]]:
    """The frames encoded once, cut into parts that each fit a queue message."""
    parts: list[list[str]] = []
    size = 0
    for frame in frames:
        text = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
        length = len(text.encode())
        if not parts or size + length > FRAMES_BYTES_PER_MESSAGE:
            parts.append([])
            size = 0
        parts[-1].append(text)
        size += length
    return parts


@dataclass(frozen=True)
class Batch:
    """One queue message, read back: the frames and who gets them."""

    frames: list[Frame]
    connection_ids: list[str]

    @property
    def pushes(self) -> list[tuple[str, Frame]]:
        return [(cid, frame) for cid in self.connection_ids for frame in self.frames]


@dataclass(frozen=True)
class GroupSend:
    """One queue message of a send to a big group, read back: the frames, and whose
    members' connections get them."""

    frames: list[Frame]
    conversation_id: str
    sender_id: str


def read_batch(body: str) -> Batch | GroupSend:
    """A body `plan` or `group_send_bodies` wrote; ValueError for anything else (a foreign
    message is not retried forever: the worker drops it with a log line)."""
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("a fan-out message is a JSON object")
    frames = document.get("frames")
    if not (isinstance(frames, list) and all(isinstance(f, dict) for f in frames)):
        raise ValueError("frames must be a list of objects")
    if "conversation_id" in document:
        conversation_id, sender_id = document["conversation_id"], document.get("sender_id")
        if not (isinstance(conversation_id, str) and isinstance(sender_id, str)):
            raise ValueError("conversation_id and sender_id must be ids")
        return GroupSend(frames, conversation_id, sender_id)
    connection_ids = document.get("connections")
    if not (isinstance(connection_ids, list)
            and all(isinstance(c, str) and c for c in connection_ids)):
        raise ValueError("connections must be a list of ids")
    return Batch(frames, connection_ids)


def unexpired(frames: list[Frame], now_ms: int) -> list[Frame]:
    """Without the messages that expired while queued: a batch that came back late (or from
    the dead-letter queue) must not show what is no longer readable."""
    return [frame for frame in frames if not (
        frame.get("type") == "message" and isinstance(frame.get("expires_at"), int)
        and frame["expires_at"] <= now_ms)]
