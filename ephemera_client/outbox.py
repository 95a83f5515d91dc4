"""What the user sent and the server has not answered yet, and which `send` frames go now."""

# Ported from the web client's `web/src/sending.ts` (PROTOCOL "Keeping order"). API Gateway runs
# every frame in its own invocation, concurrently: two send frames in flight for one conversation
# may be stored in either order. So a conversation has at most one send frame in flight; what
# piles up meanwhile goes next as one batch, in the order written. Sans-IO: the caller puts the
# frames on the wire, hands back the answers and says what time it is.

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ephemera_client.errors import MessageTooLarge

MAX_BATCH = 20
MAX_BODY_BYTES = 16_384
MAX_FRAME_BYTES = 32_768
ANSWER_TIMEOUT_S = 10.0

_CLIENT_MSG_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_DEFAULT_RETRY_MS = 2_000
# the longest `req` this outbox will plausibly write: a message must fit a frame under any of them
_WIDEST_REQ = "s" + "9" * 12


@dataclass
class PendingSend:
    conversation_id: str
    client_msg_id: str
    body: str
    retry_at: float = 0.0  # not before this (a rate limit's retry_after_ms)
    attempts: int = 0  # frames that carried it


@dataclass
class Refusal:
    """A message the server refused for good: it left the outbox, the user should hear why."""

    pending: PendingSend
    code: str
    message: str


@dataclass
class _FrameInFlight:
    conversation_id: str
    req: str
    client_msg_ids: list[str]  # every message of the frame, in the order sent
    sent_at: float
    unanswered: set[str] = field(default_factory=set)


def new_client_msg_id() -> str:
    """A fresh id, kept across every retry of one message so the server stores it once."""
    return secrets.token_urlsafe(16)


def encoded_size(frame: dict[str, Any]) -> int:
    """Bytes on the wire: raw UTF-8 JSON, as PROTOCOL asks, so ordinary 16 KB text fits."""
    return len(json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def send_frame(conversation_id: str, batch: list[PendingSend], req: str) -> dict[str, Any]:
    """One message goes in the single form (any server takes it), more in the batch form."""
    if len(batch) == 1:
        only = batch[0]
        return {"action": "send", "req": req, "conversation_id": conversation_id,
                "client_msg_id": only.client_msg_id, "body": only.body}
    return {"action": "send", "req": req, "conversation_id": conversation_id,
            "messages": [_entry(p) for p in batch]}


def _entry(pending: PendingSend) -> dict[str, str]:
    return {"client_msg_id": pending.client_msg_id, "body": pending.body}


def _retry_delay_s(error: dict[str, Any], is_batch: bool) -> float | None:
    """How long a refused frame's messages wait before going again; None: refused for good."""
    code = error.get("code")
    if code in ("rate_limited", "internal"):
        retry_ms = error.get("retry_after_ms")
        if not isinstance(retry_ms, int | float) or retry_ms < 0:
            retry_ms = _DEFAULT_RETRY_MS
        return retry_ms / 1000
    if code == "unauthorized":  # this socket is not logged in: the caller opens another
        return 0.0
    if code == "bad_request" and is_batch:  # one by one from now on, each gets its own answer
        return 0.0
    return None


class Outbox:
    """Every message sent and not yet answered by `sent`, per conversation in the order written,
    and the one send frame each conversation may have in flight."""

    def __init__(self, *, max_batch: int = MAX_BATCH,
                 answer_timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be 1..{MAX_BATCH}")
        self._batch_size = max_batch
        self._answer_timeout_s = answer_timeout_s
        self._waiting: dict[str, list[PendingSend]] = {}  # per conversation, in the order written
        self._by_id: dict[str, PendingSend] = {}
        self._written: dict[str, int] = {}  # client_msg_id -> when written, for pending()
        self._in_flight: dict[str, _FrameInFlight] = {}  # per conversation
        self._retried: set[str] = set()  # refused before and told to wait: "rate limited again"
        self._frames_sent = 0
        self._messages_written = 0
        self._last_now = -math.inf

    @property
    def batch_size(self) -> int:
        """How many messages the next batch may carry (halved or cut to 1 by refusals)."""
        return self._batch_size

    def add(self, conversation_id: str, body: str,
            client_msg_id: str | None = None) -> PendingSend:
        """Keep a message until the server answers it; refuse here what could never go."""
        client_msg_id = new_client_msg_id() if client_msg_id is None else client_msg_id
        if not isinstance(client_msg_id, str) or not _CLIENT_MSG_ID.fullmatch(client_msg_id):
            raise ValueError("client_msg_id must be 8 to 64 of [A-Za-z0-9_-]")
        if client_msg_id in self._by_id:
            raise ValueError(f"client_msg_id {client_msg_id} is already waiting")
        try:
            body_bytes = len(body.encode("utf-8"))
        except UnicodeEncodeError as exc:  # a lone surrogate: no UTF-8 frame can carry it
            raise ValueError("body is not valid Unicode text") from exc
        if body_bytes > MAX_BODY_BYTES:
            raise MessageTooLarge(f"body is {body_bytes} bytes of UTF-8, over {MAX_BODY_BYTES}")
        pending = PendingSend(conversation_id, client_msg_id, body)
        frame_bytes = encoded_size(send_frame(conversation_id, [pending], _WIDEST_REQ))
        if frame_bytes > MAX_FRAME_BYTES:
            raise MessageTooLarge(f"its frame would be {frame_bytes} bytes, over {MAX_FRAME_BYTES}")
        self._waiting.setdefault(conversation_id, []).append(pending)
        self._by_id[client_msg_id] = pending
        self._messages_written += 1
        self._written[client_msg_id] = self._messages_written
        return pending

    def frames_due(self, now: float) -> list[dict[str, Any]]:
        """One frame per conversation that has nothing in flight and whose oldest message may go;
        each is in flight once returned, so the caller must put it on the wire."""
        self._last_now = max(self._last_now, now)
        frames = []
        for conversation_id in list(self._waiting):
            if conversation_id in self._in_flight:
                continue
            batch = self._next_batch(conversation_id, now)
            if not batch:
                continue
            self._frames_sent += 1
            req = f"s{self._frames_sent}"
            ids = [p.client_msg_id for p in batch]
            for pending in batch:
                pending.attempts += 1
            self._in_flight[conversation_id] = _FrameInFlight(
                conversation_id, req, ids, now, unanswered=set(ids))
            frames.append(send_frame(conversation_id, batch, req))
        return frames

    def _next_batch(self, conversation_id: str, now: float) -> list[PendingSend]:
        """The oldest waiting messages, in the order written, as many as the batch size and one
        frame allow. Nothing while the oldest must wait: a later message never overtakes it."""
        waiting = self._waiting.get(conversation_id, [])
        if not waiting:
            return []
        req = f"s{self._frames_sent + 1}"
        frame_bytes = encoded_size(send_frame(conversation_id, [], req))  # with "messages":[]
        batch: list[PendingSend] = []
        for pending in waiting[: self._batch_size]:
            if pending.retry_at > now:  # the oldest waits: nothing goes; a later one: it stops here
                break
            frame_bytes += encoded_size(_entry(pending)) + (1 if batch else 0)  # and a comma
            if batch and frame_bytes > MAX_FRAME_BYTES:
                break
            batch.append(pending)
        return batch

    def answered(self, sent: dict[str, Any]) -> PendingSend | None:
        """A `sent` frame: its message is stored, so it leaves the outbox; its frame is freed
        once every message of it is answered. None for one already answered or not ours."""
        pending = self._by_id.get(sent.get("client_msg_id"))
        if pending is None or sent.get("conversation_id") != pending.conversation_id:
            return None
        self._forget([pending])
        frame = self._in_flight.get(pending.conversation_id)
        if frame is not None:
            frame.unanswered.discard(pending.client_msg_id)
            if not frame.unanswered:
                del self._in_flight[pending.conversation_id]
        return pending

    def is_send_error(self, error: dict[str, Any]) -> bool:
        """Whether this `error` answers one of the send frames in flight."""
        return self._frame_of(error.get("req")) is not None

    def refused(self, error: dict[str, Any], now: float) -> list[Refusal]:
        """An `error` answers a whole send frame (for a batch, nothing of it was stored): its
        messages wait and go again, or are refused for good and returned."""
        self._last_now = max(self._last_now, now)
        frame = self._frame_of(error.get("req"))
        if frame is None:
            return []
        del self._in_flight[frame.conversation_id]
        messages = [self._by_id[i] for i in frame.client_msg_ids if i in frame.unanswered
                    and i in self._by_id]
        is_batch = len(frame.client_msg_ids) > 1
        code = str(error.get("code", "internal"))
        if is_batch:
            self._shrink_batches(frame, code)
        delay_s = _retry_delay_s(error, is_batch)
        if delay_s is None:
            self._forget(messages)
            return [Refusal(p, code, str(error.get("message", ""))) for p in messages]
        for pending in messages:
            pending.retry_at = now + delay_s
            self._retried.add(pending.client_msg_id)
        return []

    def _shrink_batches(self, frame: _FrameInFlight, code: str) -> None:
        """A batch rate limited again after waiting as told may never fit the limit: halve it.
        One refused as a bad request (an older server without the batch form, or one bad
        message in it): one by one from now on, each gets its own answer."""
        size = len(frame.client_msg_ids)
        if code == "rate_limited" and frame.client_msg_ids[0] in self._retried:
            self._batch_size = max(1, min(self._batch_size, math.ceil(size / 2)))
        elif code == "bad_request":
            self._batch_size = 1

    def link_lost(self) -> None:
        """The socket died: nothing is in flight any more; every unanswered message goes again on
        the next link, in order, with the same id (the server answers what it stored
        `duplicate`)."""
        self._in_flight.clear()

    def overdue(self, now: float) -> bool:
        """A frame unanswered this long means the link that carried it is dead."""
        self._last_now = max(self._last_now, now)
        return any(now - f.sent_at >= self._answer_timeout_s for f in self._in_flight.values())

    def next_deadline(self) -> float | None:
        """When a conversation's oldest message, waiting out a refusal, may go: the earliest
        `retry_at` after the latest `now` this outbox was given, or None."""
        deadlines = [waiting[0].retry_at for conversation_id, waiting in self._waiting.items()
                     if waiting and conversation_id not in self._in_flight
                     and waiting[0].retry_at > self._last_now]
        return min(deadlines, default=None)

    def pending(self, conversation_id: str | None = None) -> list[PendingSend]:
        """What waits or is in flight, in the order written."""
        if conversation_id is not None:
            return list(self._waiting.get(conversation_id, []))
        every = [p for waiting in self._waiting.values() for p in waiting]
        return sorted(every, key=lambda p: self._written[p.client_msg_id])

    def __len__(self) -> int:
        return len(self._by_id)

    def _frame_of(self, req: object) -> _FrameInFlight | None:
        if not isinstance(req, str):
            return None
        return next((f for f in self._in_flight.values() if f.req == req), None)

    def _forget(self, messages: Iterable[PendingSend]) -> None:
        for pending in messages:
            self._by_id.pop(pending.client_msg_id, None)
            self._written.pop(pending.client_msg_id, None)
            self._retried.discard(pending.client_msg_id)
            waiting = self._waiting.get(pending.conversation_id, [])
            if any(p is pending for p in waiting):
                waiting.remove(pending)
            if not waiting:
                self._waiting.pop(pending.conversation_id, None)
