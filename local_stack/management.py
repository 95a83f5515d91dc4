"""`LocalManagementApi`: API Gateway's `@connections` API on the stack's own port.

boto3's `apigatewaymanagementapi` client, pointed at `http://HOST:PORT/local`, signs its
requests with SigV4; like API Gateway with valid credentials, any signature is accepted here.
An id with no live socket answers 410 with `x-amzn-ErrorType: GoneException`, which boto3
raises as `GoneException`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiohttp import web

from local_stack.websocket import LocalWebsocketGateway

PATH = "/local/@connections/{connection_id}"


class LocalManagementApi:
    def __init__(self, gateway: LocalWebsocketGateway) -> None:
        self._gateway = gateway

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(PATH, self.post_to_connection)
        router.add_get(PATH, self.get_connection)
        router.add_delete(PATH, self.delete_connection)

    async def post_to_connection(self, request: web.Request) -> web.Response:
        connection_id = request.match_info["connection_id"]
        if not await self._gateway.post(connection_id, await request.read()):
            return _gone()
        return web.Response(status=200)

    async def get_connection(self, request: web.Request) -> web.Response:
        connection = self._gateway.connections.get(request.match_info["connection_id"])
        if connection is None:
            return _gone()
        return web.json_response({
            "connectedAt": _iso(connection.connected_at_ms / 1000),
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            "lastActiveAt": _iso(connection.last_active_at_ms / 1000),
        })

    async def delete_connection(self, request: web.Request) -> web.Response:
        if not await self._gateway.close(request.match_info["connection_id"]):
            return _gone()
        return web.Response(status=204)


def _gone() -> web.Response:
    return web.Response(status=410, body=json.dumps({"message": None}),
                        headers={"x-amzn-ErrorType": "GoneException",
                                 "Content-Type": "application/json"})


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
