"""`LocalWebsocketGateway`: sockets in, `$connect`/`$default`/`$disconnect` events out, with
API Gateway's limits (frame size, idle timeout, maximum connection age) and one of its own
(frames waiting for a worker)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from local_stack.events import WebsocketEventConverter
from local_stack.lambdas import LambdaPool
from local_stack.logtext import printable

log = logging.getLogger("local_stack")

MAX_FRAME_BYTES = 32 * 1024  # API Gateway's frame limit; this stack holds a whole message to it
# Frames of one socket received and not yet handled by a worker (queued or running). Each holds
# its body in this process until a worker is free, so without a bound a client that sends
# faster than the workers drain grows the front process without end (1,500 frames of 30 KB:
# +51 MB). Honest clients stay far below: they await their replies, and the app's limits
# admit about 120 frames a minute.
MAX_QUEUED_FRAMES = 100


def new_connection_id() -> str:
    """Shaped like API Gateway's ids ("L0SM9cOFvHcCIhw="): 16 characters ending in '=', case
    significant, never '/', so URL-encoding bugs show up here rather than in AWS."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()


@dataclass(slots=True)  # one per socket held: no __dict__ each
class LocalConnection:
    id: str
    socket: web.WebSocketResponse
    source_ip: str
    user_agent: str | None
    connected_at_ms: int
    opened: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    last_active_at_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    close_reason: str = ""
    frames_in_flight: int = 0

    def touch(self) -> None:
        self.last_active = time.monotonic()
        self.last_active_at_ms = time.time_ns() // 1_000_000


class LocalWebsocketGateway:
    def __init__(self, pool: LambdaPool, converter: WebsocketEventConverter, *,
                 routes: set[str], idle_timeout_s: int, max_connection_s: int,
                 max_queued_frames: int = MAX_QUEUED_FRAMES) -> None:
        self._pool = pool
        self._routes = routes
        self._converter = converter
        self._idle_timeout_s = idle_timeout_s
        self._max_connection_s = max_connection_s
        self._max_queued_frames = max_queued_frames
        self.connections: dict[str, LocalConnection] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def handle_upgrade(self, request: web.Request) -> web.StreamResponse:
        connection_id = new_connection_id()
        connected_at = time.time_ns() // 1_000_000
        source_ip = request.remote or "127.0.0.1"
        status = await self._admit(request, connection_id, connected_at, source_ip)
        log.info("ws   %s connect -> %s", connection_id, status)
        if status != 200:
            # API Gateway answers the upgrade request itself with the handler's status.
            return web.Response(status=status)

        # API Gateway negotiates no extensions: frames travel uncompressed (and this process
        # does not deflate every push).
        socket = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, autoping=True,
                                       compress=False)
        await socket.prepare(request)
        connection = LocalConnection(connection_id, socket, source_ip,
                                     request.headers.get("User-Agent"), connected_at)
        self.connections[connection_id] = connection
        try:
            await self._read_frames(connection)
        finally:
            await self._disconnected(connection)
        return socket

    async def _admit(self, request: web.Request, connection_id: str, connected_at: int,
                     source_ip: str) -> int:
        """`$connect`'s answer, as a status. Its event (the request's headers and query, copied
        twice over: about 3 KB) is built and dropped here, not in `handle_upgrade`, whose frame
        lives as long as the socket: 10,000 sockets held it as 30 MB of the front process."""
        headers = dict(request.headers)
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        event = self._converter.connect(connection_id, connected_at, headers=headers,
                                        query=query, source_ip=source_ip)
        reply = await self._pool.invoke("$connect", event) or {}
        return int(reply.get("statusCode", 200))

    async def _read_frames(self, connection: LocalConnection) -> None:
        async for frame in connection.socket:
            connection.touch()
            if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if connection.frames_in_flight >= self._max_queued_frames:
                    # A flood, not a client waiting for replies: cut it (its $disconnect runs
                    # as for any close) rather than hold its frames in memory.
                    await self.close(connection.id, code=WSCloseCode.POLICY_VIOLATION,
                                     reason="Policy violation: too many frames in flight",
                                     wait=True)
                    break
                body = frame.data if frame.type == WSMsgType.TEXT else frame.data.decode(
                    "utf-8", "replace")
                connection.frames_in_flight += 1
                self._spawn(self._deliver(connection, body))
            elif frame.type == WSMsgType.ERROR:
                connection.close_reason = f"Error: {connection.socket.exception()}"
                break

    async def _deliver(self, connection: LocalConnection, body: str) -> None:
        try:
            await self._invoke_default(connection, body)
        finally:
            connection.frames_in_flight -= 1

    async def _invoke_default(self, connection: LocalConnection, body: str) -> None:
        started = time.perf_counter()
        event = self._converter.message(connection.id, connection.connected_at_ms, body,
                                        source_ip=connection.source_ip)
        if "$default" not in self._routes:
            # What API Gateway answers when no route takes a message.
            await self.post(connection.id, json.dumps({
                "message": "Forbidden", "connectionId": connection.id,
                "requestId": event["requestContext"]["requestId"]}).encode())
            return
        try:
            await self._pool.invoke("$default", event)
            outcome = "ok"
        except Exception as exc:
            outcome = f"failed ({type(exc).__name__})"
            log.exception("ws   %s $default failed", connection.id)
        log.info("ws   %s frame %d B -> $default %s (%.1f ms)", connection.id,
                 len(body.encode()), outcome, (time.perf_counter() - started) * 1000)

    async def _disconnected(self, connection: LocalConnection) -> None:
        self.connections.pop(connection.id, None)
        code = connection.socket.close_code or WSCloseCode.ABNORMAL_CLOSURE
        # Escaped and capped: the log is one line per close, and the app may log the reason.
        reason = printable(connection.close_reason
                           or f"Client-side close frame status code '{code}'")
        log.info("ws   %s closed %s (%s)", connection.id, code, reason)
        event = self._converter.disconnect(connection.id, connection.connected_at_ms,
                                           status_code=int(code), reason=reason,
                                           source_ip=connection.source_ip)
        try:
            await self._pool.invoke("$disconnect", event)
        except Exception:
            log.exception("ws   %s $disconnect failed", connection.id)

    # --- what the management API and the limits do to a connection ----------------------

    async def post(self, connection_id: str, data: bytes) -> bool:
        connection = self.connections.get(connection_id)
        if connection is None or connection.socket.closed:
            return False
        await connection.socket.send_str(data.decode("utf-8"))
        connection.touch()
        return True

    async def close(self, connection_id: str, *, code: int = WSCloseCode.OK,
                    reason: str = "Connection deleted", wait: bool = False) -> bool:
        """Close a socket. Like API Gateway's DeleteConnection, the id is gone at once (a post
        to it is 410) and the caller does not wait for the client's side of the handshake."""
        connection = self.connections.pop(connection_id, None)
        if connection is None:
            return False
        connection.close_reason = reason
        closing = connection.socket.close(code=code, message=reason.encode()[:120])
        if wait:
            await closing
        else:
            self._spawn(closing)
        return True

    async def enforce_limits_forever(self) -> None:
        """Close sockets idle for too long or open for too long, as API Gateway does."""
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for connection in list(self.connections.values()):
                if now - connection.opened >= self._max_connection_s:
                    await self.close(connection.id, code=WSCloseCode.GOING_AWAY,
                                     reason="Going away: maximum connection duration")
                elif now - connection.last_active >= self._idle_timeout_s:
                    await self.close(connection.id, code=WSCloseCode.GOING_AWAY,
                                     reason="Going away: idle timeout")

    async def close_all(self) -> None:
        for connection_id in list(self.connections):
            await self.close(connection_id, code=WSCloseCode.GOING_AWAY, reason="Stack stopping",
                             wait=True)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
