"""`LocalManagementApi`: API Gateway's `@connections` API on the stack's own port.

The push adapter (or boto3's `apigatewaymanagementapi` client), pointed at
`http://HOST:PORT/local`, signs its requests with SigV4; like API Gateway with valid
credentials, any signature is accepted here. An id with no live socket answers 410 with
`x-amzn-ErrorType: GoneException`, as AWS does.

Faults, for tests and chaos runs: `POST /local/@faults` with
`{"connection_id": "...", "status": 429, "times": 2, "delay_ms": 0}` makes the next `times`
pushes (`POST @connections/{id}`) to that connection wait `delay_ms`, then answer `status`
(410 GoneException, 429 LimitExceededException, 500 InternalServerErrorException, ...) without
delivering the frame. Without `status` (or `null`) the push is only delayed, then delivered;
without `connection_id` the fault applies to pushes to any connection. A new fault for the same
id replaces the old one; `DELETE /local/@faults` clears them all.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from local_stack.websocket import LocalWebsocketGateway

PATH = "/local/@connections/{connection_id}"
FAULTS_PATH = "/local/@faults"
ANY_CONNECTION = "*"
MAX_FAULT_DELAY_MS = 60_000
# What API Gateway's management API names each failure in `x-amzn-ErrorType`.
ERROR_TYPES = {400: "BadRequestException", 403: "ForbiddenException", 410: "GoneException",
               413: "PayloadTooLargeException", 429: "LimitExceededException",
               500: "InternalServerErrorException"}


@dataclass
class Fault:
    status: int | None
    times: int
    delay_s: float


class LocalManagementApi:
    def __init__(self, gateway: LocalWebsocketGateway) -> None:
        self._gateway = gateway
        self._faults: dict[str, Fault] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(PATH, self.post_to_connection)
        router.add_get(PATH, self.get_connection)
        router.add_delete(PATH, self.delete_connection)
        router.add_post(FAULTS_PATH, self.add_fault)
        router.add_delete(FAULTS_PATH, self.clear_faults)

    async def post_to_connection(self, request: web.Request) -> web.Response:
        connection_id = request.match_info["connection_id"]
        if self._faults:
            fault = self._take_fault(connection_id)
            if fault is not None:
                await asyncio.sleep(fault.delay_s)
                if fault.status is not None:
                    return _error(fault.status)
        if not await self._gateway.post(connection_id, await request.read()):
            return _error(410)
        return web.Response(status=200)

    async def get_connection(self, request: web.Request) -> web.Response:
        connection = self._gateway.connections.get(request.match_info["connection_id"])
        if connection is None:
            return _error(410)
        return web.json_response({
            "connectedAt": _iso(connection.connected_at_ms / 1000),
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            "lastActiveAt": _iso(connection.last_active_at_ms / 1000),
        })

    async def delete_connection(self, request: web.Request) -> web.Response:
        if not await self._gateway.close(request.match_info["connection_id"]):
            return _error(410)
        return web.Response(status=204)

    async def add_fault(self, request: web.Request) -> web.Response:
        try:
            connection_id, fault = _parse_fault(await request.json())
        except (ValueError, TypeError) as error:
            return web.json_response({"message": f"Invalid fault: {error}"}, status=400)
        self._faults[connection_id] = fault
        return web.Response(status=204)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self._faults.clear()
        return web.Response(status=204)

    def _take_fault(self, connection_id: str) -> Fault | None:
        key = connection_id if connection_id in self._faults else ANY_CONNECTION
        fault = self._faults.get(key)
        if fault is None:
            return None
        fault.times -= 1
        if fault.times <= 0:
            del self._faults[key]
        return fault


def _parse_fault(body: Any) -> tuple[str, Fault]:
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    connection_id = body.get("connection_id", ANY_CONNECTION)
    status, times, delay_ms = body.get("status"), body.get("times", 1), body.get("delay_ms", 0)
    if not isinstance(connection_id, str) or not connection_id:
        raise ValueError("connection_id must be a non-empty string")
    if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
        raise ValueError("status must be an HTTP error status (400-599) or null")
    if not (isinstance(times, int) and times >= 1):
        raise ValueError("times must be a whole number, at least 1")
    if not (isinstance(delay_ms, int) and 0 <= delay_ms <= MAX_FAULT_DELAY_MS):
        raise ValueError(f"delay_ms must be a whole number from 0 to {MAX_FAULT_DELAY_MS}")
    return connection_id, Fault(status, times, delay_ms / 1000)


def _error(status: int) -> web.Response:
    return web.Response(status=status, body=json.dumps({"message": None}),
                        headers={"x-amzn-ErrorType": ERROR_TYPES.get(status, "UnknownException"),
                                 "Content-Type": "application/json"})


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
