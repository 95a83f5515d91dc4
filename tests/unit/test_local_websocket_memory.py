"""What the local stack's front process keeps per open socket: not the `$connect` event. Built
from the upgrade request's headers and query (about 3 KB), it was held by every socket's handler
for as long as the socket lived: 30 MB of the front process at 10,000 sockets
(bench/sockets_held.py)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from local_stack.events import WebsocketEventConverter
from local_stack.websocket import LocalWebsocketGateway


class AdmittingPool:
    """A pool whose `$connect` admits everyone and keeps nothing of the events it is given."""

    def __init__(self) -> None:
        self.invoked: list[str] = []

    async def invoke(self, function: str, event: dict[str, Any]) -> Any:
        self.invoked.append(function)
        return {"statusCode": 200} if function == "$connect" else None


def live_connect_events() -> list[dict[str, Any]]:
    gc.collect()
    return [o for o in gc.get_objects()
            if isinstance(o, dict) and "multiValueHeaders" in o and "requestContext" in o]


async def open_sockets_then_count_connect_events(sockets: int) -> tuple[int, int, list[str]]:
    pool = AdmittingPool()
    gateway = LocalWebsocketGateway(pool, WebsocketEventConverter("127.0.0.1:1"),  # type: ignore[arg-type]
                                    routes={"$connect", "$default", "$disconnect"},
                                    idle_timeout_s=600, max_connection_s=7200)
    application = web.Application()
    application.router.add_get("/ws", gateway.handle_upgrade)
    async with TestClient(TestServer(application)) as client:
        opened = [await client.ws_connect("/ws?ticket=t", headers={"User-Agent": "probe"})
                  for _ in range(sockets)]
        held = len(gateway.connections)
        events = len(live_connect_events())
        for socket in opened:
            await socket.close()
    return held, events, pool.invoked


def test_an_open_socket_does_not_keep_its_connect_event_in_memory():
    held, events, invoked = asyncio.run(open_sockets_then_count_connect_events(3))
    assert held == 3
    assert invoked.count("$connect") == 3
    assert events == 0
