"""`Client`: the socket half of the protocol, done right, over the REST half (`Api`).

One task keeps one socket open: a fresh single-use ticket per connection, a `sync` that pages
until done after every (re)connect, an application heartbeat that notices a dead link, and
reconnection with capped, jittered backoff. Sends go through the outbox (one frame in flight per
conversation, retried with the same `client_msg_id` until `sent`), messages through the inbox
(exactly once, in `seq` order, held briefly across a gap), and acks and reads are coalesced per
conversation so a busy client stays within the server's frame limit."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from ephemera_client.api import Api
from ephemera_client.errors import ApiError, ClientError, MessageTooLarge, SignedOut, Unreachable
from ephemera_client.events import (
    Connected,
    ConversationChanged,
    Disconnected,
    Event,
    MemberChanged,
    Message,
    SendFailed,
    Sent,
    event_of,
    expired_of,
    message_of,
    sent_of,
)
from ephemera_client.inbox import Inbox
from ephemera_client.outbox import MAX_FRAME_BYTES, Outbox, PendingSend
from ephemera_client.session import SessionStore, merged_cursors

_CLOSED = object()  # ends events()
HELLO = "hello"  # the `req` of a send-only client's first ping
CATCH_UP_RETRY_S = 1.0  # a refused catch-up is asked again this soon, unless told otherwise


@dataclass(frozen=True)
class Timing:
    """PROTOCOL's numbers: a ping a minute keeps the socket and presence fresh; a ping (or the
    first sync) unanswered for 10 s means the link is dead."""

    ping_every_s: float = 60.0
    answer_timeout_s: float = 10.0
    max_backoff_s: float = 15.0
    coalesce_s: float = 1.0  # acks and reads go at most this often per conversation
    tick_s: float = 0.05
    reply_timeout_s: float = 15.0


class Client:
    """A signed-in device of one server. Use `async with Client(...) as client`."""

    def __init__(self, url: str, *, session: SessionStore | None = None,
                 timing: Timing | None = None, api: Api | None = None,
                 receive: bool = True) -> None:
        self.api = api or Api(url, session=session)
        # receive=False: a client that only sends (`ephemera send`). It neither catches up nor
        # acks what is pushed to it, so nothing is marked delivered to a device that shows
        # nothing, and its cursors are left as they were.
        self.receives = receive
        self.timing = timing or Timing()
        self.inbox = Inbox()
        self.outbox = Outbox(answer_timeout_s=self.timing.answer_timeout_s)
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._runner: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._beat_timer: asyncio.TimerHandle | None = None
        self._reqs = itertools.count(1)
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._sends: dict[str, asyncio.Future[Sent]] = {}
        self._reads: dict[str, int] = {}
        self._sync_req: str | None = None
        self._catch_up_at: float | None = None  # when to ask again for a refused catch-up
        self._failure: BaseException | None = None
        self.reconnects = 0
        credentials = self.api.session.load()
        for conversation_id, seq in (credentials.cursors if credentials else {}).items():
            self.inbox.start_at(conversation_id, seq)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def user_id(self) -> str:
        return self.api.credentials().user_id

    @property
    def device_id(self) -> str:
        return self.api.credentials().device_id

    # --- the link's life --------------------------------------------------------------------

    async def connect(self, *, wait: bool = True, timeout_s: float = 30.0) -> None:
        """Starts the link (it reconnects by itself until `close`); with `wait`, returns once a
        socket is open and its catch-up sync is done."""
        self.api.credentials()  # SignedOut now, not in the background
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="ephemera-link")
        if wait:
            waiter = asyncio.create_task(self._connected.wait())
            done, _ = await asyncio.wait({waiter, self._runner}, timeout=timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            self._raise_failure()
            if not done:
                raise Unreachable(f"no socket to {self.api.url} within {timeout_s:.0f} s")

    async def close(self) -> None:
        """Stops the link, keeps the cursors in the session, and ends `events()`."""
        if self._connected.is_set():
            # Reads and acks still coalescing go now, and a ping's answer gives the server time to
            # store them before it handles the close (which would make them no-ops).
            await self._flush_cursors()
            with contextlib.suppress(ClientError, TimeoutError):
                await asyncio.wait_for(self.ping(), self.timing.answer_timeout_s)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientError):
                await self._runner
            self._runner = None
        await self._drop()
        self.save_cursors()
        await self.api.close()
        self._events.put_nowait(_CLOSED)

    def save_cursors(self) -> None:
        if not self.receives:
            return
        with self.api.session.locked():
            credentials = self.api.session.load()
            if credentials is not None:
                credentials.cursors = merged_cursors(credentials.cursors, self.inbox.cursors())
                self.api.session.save(credentials)

    async def events(self) -> AsyncIterator[Event]:
        """Every event, in the order it happened (messages in `seq` order per conversation),
        until `close`. Raises `SignedOut` when the session ends underneath."""
        while True:
            event = await self._events.get()
            if event is _CLOSED:
                self._raise_failure()
                return
            yield event

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _run(self) -> None:
        failures = 0
        try:
            while True:
                try:
                    answered = await self._serve_one_socket()
                except (SignedOut, asyncio.CancelledError):
                    raise
                except ClientError as error:
                    answered, reason = False, str(error)
                else:
                    reason = "the socket closed"
                self.outbox.link_lost()
                self._fail_replies(Unreachable("the link died before the answer"))
                if self._connected.is_set():
                    self._connected.clear()
                    self._emit(Disconnected(raw={}, reason=reason))
                failures = 0 if answered else failures + 1
                await asyncio.sleep(self._backoff_s(failures))
                self.reconnects += 1
        except SignedOut as signed_out:
            self._failure = signed_out
            self._fail_replies(signed_out)
            self._events.put_nowait(_CLOSED)

    def _backoff_s(self, failures: int) -> float:
        """Capped, jittered: half the step fixed, half random, so devices that lost the same
        link do not all come back in the same instant."""
        step = min(self.timing.max_backoff_s, 0.25 * 2 ** min(failures, 8))
        return step / 2 + random.random() * step / 2

    async def _serve_one_socket(self) -> bool:
        """Opens a socket with a fresh ticket and serves it until it dies; True if the server
        answered on it (the next failure starts the backoff from the bottom)."""
        ticket = await self.api.ticket()
        try:
            self._socket = await self.api.http.ws_connect(
                f"{ticket['url']}?ticket={ticket['ticket']}", autoping=True,
                max_msg_size=4 * 1024 * 1024)
        except aiohttp.WSServerHandshakeError as refused:
            raise Unreachable(f"the socket was refused ({refused.status})") from None
        except (aiohttp.ClientError, TimeoutError) as error:
            raise Unreachable(f"no socket ({type(error).__name__})") from None
        answered = False
        ticker = asyncio.create_task(self._tick_while_open(self._socket))
        try:
            self._last_ping_at = time.monotonic()
            self._awaiting_since: float | None = time.monotonic()
            self._catch_up_at = None
            await self._catch_up()
            async for raw in self._socket:
                if raw.type != aiohttp.WSMsgType.TEXT:
                    break
                answered = True
                self._awaiting_since = None
                await self._on_frame(json.loads(raw.data))
        finally:
            await self._drop()  # first: the ticker ends by itself once the socket is gone
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        return answered

    async def _catch_up(self) -> None:
        """What a fresh socket asks first; its answer makes the link connected: `sync` to the
        end, or for a client that only sends, a ping."""
        if self.receives:
            await self._sync()
        else:
            await self._put({"action": "ping", "req": HELLO})

    async def _drop(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None and not socket.closed:
            with contextlib.suppress(Exception):  # a dead link may fail even to close
                await asyncio.wait_for(socket.close(), 1)

    async def _tick_while_open(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """The heartbeat, the outbox, gaps waiting for sync, and coalesced acks and reads:
        checked every `tick_s`, and at once when a frame frees something to send."""
        loop = asyncio.get_running_loop()
        self._beat_timer = loop.call_later(self.timing.tick_s, self._beat, loop)
        try:
            await self._tick_until_closed(socket)
        finally:
            if self._beat_timer is not None:
                self._beat_timer.cancel()

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wakes the ticker every `tick_s`, from one timer re-armed as it fires (a timeout per
        wait, scheduled and cancelled each time, cost a third of the client's CPU under load)."""
        self._wake.set()
        self._beat_timer = loop.call_later(self.timing.tick_s, self._beat, loop)

    async def _tick_until_closed(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        last_flush = 0.0
        while self._socket is socket and not socket.closed:
            now = time.monotonic()
            if self._awaiting_since is not None and \
                    now - self._awaiting_since >= self.timing.answer_timeout_s:
                await self._drop()  # unanswered: dead, even if the socket looks open
                return
            if self.outbox.overdue(now):
                await self._drop()
                return
            if self._catch_up_at is not None and now >= self._catch_up_at:
                self._catch_up_at = None  # the catch-up was refused: ask again
                self._awaiting_since = self._awaiting_since or now
                await self._catch_up()
            if now - self._last_ping_at >= self.timing.ping_every_s:
                self._awaiting_since = self._awaiting_since or now
                self._last_ping_at = now
                await self._put({"action": "ping"})
            if self._connected.is_set():
                for frame in self.outbox.frames_due(now):
                    await self._put(frame)
                if self.inbox.gaps_due(now) and self._sync_req is None:
                    await self._sync()
                if now - last_flush >= self.timing.coalesce_s:
                    last_flush = now
                    await self._flush_cursors()
            self._wake.clear()
            await self._wake.wait()

    async def _put(self, frame: dict[str, Any]) -> bool:
        socket = self._socket
        if socket is None or socket.closed:
            return False
        try:
            await socket.send_str(json.dumps(frame, ensure_ascii=False, separators=(",", ":")))
        except (ConnectionError, aiohttp.ClientError):
            return False
        return True

    async def _flush_cursors(self) -> None:
        for conversation_id, seq in self.inbox.acks_due().items():
            await self._put({"action": "ack", "conversation_id": conversation_id, "seq": seq})
        reads, self._reads = self._reads, {}
        for conversation_id, seq in reads.items():
            if not await self._put({"action": "read", "conversation_id": conversation_id,
                                    "seq": seq}):
                self._reads.setdefault(conversation_id, seq)  # next link

    async def _sync(self) -> None:
        self._sync_req = f"sync:{next(self._reqs)}"
        await self._put({"action": "sync", "req": self._sync_req,
                         "cursors": self.inbox.cursors()})

    # --- frames in --------------------------------------------------------------------------

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            if self.receives:
                self._emit_all(self.inbox.receive(frame, time.monotonic()))
        elif kind == "pong" and frame.get("req") == HELLO:
            self._now_connected(frame)
        elif kind == "sent":
            self._on_sent(frame)
        elif kind == "sync" and frame.get("req") == self._sync_req:
            await self._on_sync(frame)
        elif kind == "error":
            await self._on_error(frame)
        else:
            self._on_event(frame)
        self._resolve_reply(frame)
        if kind != "message":  # what a message asks of the ticker (ack, gap) waits for a beat
            self._wake.set()

    def _on_sent(self, frame: dict[str, Any]) -> None:
        pending = self.outbox.answered(frame)
        if pending is None:
            return  # the answer to a copy already answered
        sent = sent_of(frame)
        if not sent.expired and self.receives:
            self._emit_all(self.inbox.own_send(sent.conversation_id, sent.seq, sent.message_id))
        self._emit(sent)
        waiter = self._sends.pop(pending.client_msg_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(sent)

    def apply_sync_reply(self, frame: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        """Feeds a `sync` reply to the inbox: the messages it releases, in order, and whether
        the server has more (`has_more` or `more_conversations`): then sync again."""
        released: list[dict[str, Any]] = []
        again = bool(frame.get("more_conversations"))
        for entry in frame.get("conversations", []):
            released += self.inbox.synced(
                entry["conversation_id"], messages=entry.get("messages", []),
                first_seq=entry.get("first_seq", 1), last_seq=entry.get("last_seq", 0),
                has_more=bool(entry.get("has_more")))
            again = again or bool(entry.get("has_more"))
        return released, again

    async def _on_sync(self, frame: dict[str, Any]) -> None:
        self._sync_req = None
        released, again = self.apply_sync_reply(frame)
        self._emit_all(released)
        if again:
            await self._sync()
        else:
            self._now_connected(frame)

    def _now_connected(self, frame: dict[str, Any]) -> None:
        if not self._connected.is_set():
            self._connected.set()
            self._emit(Connected(raw=frame, server_time=frame.get("server_time", 0)))

    async def _on_error(self, frame: dict[str, Any]) -> None:
        req = frame.get("req")
        if req is not None and req in (self._sync_req, HELLO) and not self._connected.is_set():
            # The catch-up was refused (`internal` when the server lost its database): nothing
            # else would ask again while the socket lives, and until it is answered nothing is
            # sent. So it is asked again, after `retry_after_ms` or a second.
            self._catch_up_at = time.monotonic() + (
                _seconds(frame.get("retry_after_ms")) or CATCH_UP_RETRY_S)
        if req is not None and req == self._sync_req:
            self._sync_req = None  # the next gap or link asks again
        if self.outbox.is_send_error(frame):
            for refusal in self.outbox.refused(frame, time.monotonic()):
                failed = SendFailed(raw=frame, conversation_id=refusal.pending.conversation_id,
                                    client_msg_id=refusal.pending.client_msg_id,
                                    code=refusal.code, message=refusal.message)
                self._emit(failed)
                waiter = self._sends.pop(refusal.pending.client_msg_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(ApiError(refusal.code, refusal.message))
        elif frame.get("req") not in self._replies:
            self._on_event(frame)
        if frame.get("code") == "unauthorized":
            await self._drop()  # this socket holds no login: a new one, with a new ticket

    def _on_event(self, frame: dict[str, Any]) -> None:
        event = event_of(frame)
        if event is None:
            return
        if frame.get("type") == "expired":
            expired = expired_of(frame)
            self._emit_all(self.inbox.expired(expired.conversation_id,
                                              [list(r) for r in expired.ranges],
                                              expired.up_to_seq))
        elif isinstance(event, ConversationChanged):
            listed = event.conversation
            if listed.get("id") and not self.inbox.knows(listed["id"]):
                self._emit_all(self.inbox.start_at(listed["id"], int(listed.get("last_seq", 0))))
        elif isinstance(event, MemberChanged) and event.change in ("removed", "left"):
            credentials = self.api.session.load()
            if credentials is not None and event.user_id == credentials.user_id:
                self.inbox.forget(event.conversation_id)
        self._emit(event)

    def _resolve_reply(self, frame: dict[str, Any]) -> None:
        waiter = self._replies.pop(str(frame.get("req")), None) if "req" in frame else None
        if waiter is None or waiter.done():
            return
        if frame.get("type") == "error":
            waiter.set_exception(ApiError(frame.get("code", "internal"),
                                          frame.get("message", ""),
                                          retry_after_s=_seconds(frame.get("retry_after_ms"))))
        else:
            waiter.set_result(frame)

    def _fail_replies(self, error: ClientError) -> None:
        replies, self._replies = self._replies, {}
        for waiter in replies.values():
            if not waiter.done():
                waiter.set_exception(error)
        if isinstance(error, SignedOut):
            sends, self._sends = self._sends, {}
            for waiter in sends.values():
                if not waiter.done():
                    waiter.set_exception(error)

    def _emit(self, event: Event) -> None:
        self._events.put_nowait(event)

    def _emit_all(self, released: list[dict[str, Any]]) -> None:
        for message in released:
            self._emit(message_of(message))

    # --- what a caller does -------------------------------------------------------------------

    def send(self, conversation_id: str, body: str, *,
             client_msg_id: str | None = None) -> PendingSend:
        """Queues a message (it goes now if the link is up, else when it is back) and returns
        at once; its `Sent` (or `SendFailed`) comes through `events()`."""
        pending = self.outbox.add(conversation_id, body, client_msg_id)
        self._wake.set()
        return pending

    async def send_and_wait(self, conversation_id: str, body: str, *,
                            client_msg_id: str | None = None,
                            timeout_s: float = 30.0) -> Sent:
        """Sends and waits for the server's `sent`; raises the refusal as `ApiError`."""
        pending = self.send(conversation_id, body, client_msg_id=client_msg_id)
        waiter = self._sends.setdefault(pending.client_msg_id,
                                        asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
        except TimeoutError:
            raise Unreachable(f"no answer to the send within {timeout_s:.0f} s") from None

    def read(self, conversation_id: str, seq: int) -> None:
        """The user has read up to `seq` (sent coalesced, at most once a second)."""
        self._reads[conversation_id] = max(seq, self._reads.get(conversation_id, 0))

    async def typing(self, conversation_id: str, active: bool = True) -> None:
        await self._put({"action": "typing", "conversation_id": conversation_id,
                         "active": active})

    async def unsend(self, conversation_id: str, seq: int) -> dict[str, Any]:
        """Takes back one of the user's messages; the reply is the `expired` frame."""
        return await self.request({"action": "unsend", "conversation_id": conversation_id,
                                   "seq": seq})

    async def ping(self) -> dict[str, Any]:
        return await self.request({"action": "ping"})

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Sends a frame with a fresh `req` and waits for the frame that echoes it."""
        if not self._connected.is_set():
            raise Unreachable("not connected")
        req = f"r{next(self._reqs)}"
        waiter = asyncio.get_running_loop().create_future()
        self._replies[req] = waiter
        encoded = json.dumps({**frame, "req": req}, ensure_ascii=False)
        if len(encoded.encode()) > MAX_FRAME_BYTES:
            self._replies.pop(req, None)
            raise MessageTooLarge("the frame would exceed 32 KB")
        if not await self._put({**frame, "req": req}):
            self._replies.pop(req, None)
            raise Unreachable("the link is down")
        try:
            return await asyncio.wait_for(waiter, self.timing.reply_timeout_s)
        except TimeoutError:
            self._replies.pop(req, None)
            raise Unreachable("no answer in time") from None


def _seconds(milliseconds: Any) -> float | None:
    return milliseconds / 1000 if isinstance(milliseconds, int | float) else None


__all__ = ["Client", "Message", "Sent", "Timing"]
