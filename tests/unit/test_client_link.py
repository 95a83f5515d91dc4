"""The Python client's link against a scripted server: what it does when the server refuses the
first thing a socket asks (the catch-up `sync`, or a send-only client's ping)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from ephemera_client.client import Client, Timing
from ephemera_client.session import Credentials, MemorySession
from tests.support.ports import free_port

FAST = Timing(max_backoff_s=0.5, coalesce_s=0.2)


class ScriptedServer:
    """`POST /ws/ticket` and a socket that answers `sync`, `ping` and `send` as the server
    does, except that the first `refusals` catch-ups (sync or ping) get `internal`, as a server
    that lost its database connection twice in a row answers."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sockets = 0
        self.seen: list[str] = []

    async def ticket(self, request: web.Request) -> web.Response:
        return web.json_response({"url": f"ws://127.0.0.1:{self.port}/ws", "ticket": "t"})

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets += 1
        async for raw in socket:
            frame = json.loads(raw.data)
            self.seen.append(frame["action"])
            await socket.send_str(json.dumps(self.answer(frame)))
        return socket

    def answer(self, frame: dict[str, Any]) -> dict[str, Any]:
        req = frame.get("req")
        if frame["action"] in ("sync", "ping") and self.refusals:
            self.refusals -= 1
            return {"type": "error", "code": "internal", "message": "try again", "req": req}
        if frame["action"] == "sync":
            return {"type": "sync", "req": req, "server_time": 0, "conversations": []}
        if frame["action"] == "send":
            return {"type": "sent", "req": req, "conversation_id": frame["conversation_id"],
                    "client_msg_id": frame["client_msg_id"], "message_id": "m1", "seq": 1,
                    "created_at": 0, "expires_at": 1, "duplicate": False}
        return {"type": "pong", "req": req, "server_time": 0}


@asynccontextmanager
async def serving(server: ScriptedServer) -> AsyncIterator[ScriptedServer]:
    app = web.Application()
    app.router.add_post("/ws/ticket", server.ticket)
    app.router.add_get("/ws", server.socket)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    try:
        yield server
    finally:
        await runner.cleanup()


def signed_in_client(url: str, *, receive: bool = True) -> Client:
    credentials = Credentials(url, "user-1", "+14155550101", "device-1", "access", "refresh",
                              access_expires_at=time.time() + 3600)
    return Client(url, session=MemorySession(credentials), timing=FAST, receive=receive)


def test_a_refused_catch_up_sync_is_asked_again_and_the_outbox_then_goes():
    async def scenario() -> None:
        async with serving(ScriptedServer(refusals=2)) as server:
            client = signed_in_client(server.url)
            try:
                client.send("conversation-1", "written before the link was up")
                await client.connect(timeout_s=10)  # before: never connected, on a live socket
                await asyncio.wait_for(_drained(client), 10)
            finally:
                await client.close()

        assert server.seen[:3] == ["sync", "sync", "sync"]
        assert "send" in server.seen and server.sockets == 1  # the same socket, asked again

    asyncio.run(scenario())


def test_a_send_only_client_whose_first_ping_is_refused_asks_again():
    async def scenario() -> None:
        async with serving(ScriptedServer(refusals=1)) as server:
            client = signed_in_client(server.url, receive=False)
            try:
                sent = asyncio.create_task(client.send_and_wait("conversation-1", "hello"))
                await client.connect(timeout_s=10)
                assert (await asyncio.wait_for(sent, 10)).seq == 1
            finally:
                await client.close()

        assert server.seen[:2] == ["ping", "ping"]

    asyncio.run(scenario())


async def _drained(client: Client) -> None:
    while len(client.outbox):
        await asyncio.sleep(0.02)
