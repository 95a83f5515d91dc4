"""`LocalRestGateway`: HTTP requests to the Chalice app, routed and answered as API Gateway's
REST API would (Chalice's own `LocalGateway` does the routing, CORS and error replies)."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

from aiohttp import web
from chalice.app import Chalice
from chalice.local import LocalGateway, LocalGatewayException

from local_stack.events import SOURCE_IP_HEADER, RestEventConverter
from local_stack.lambdas import API_HANDLER, LambdaPool
from local_stack.logtext import printable

log = logging.getLogger("local_stack")



class _LocalGatewayConfig:
    """The few settings `LocalGateway` reads from a Chalice config."""

    function_name = API_HANDLER
    lambda_timeout = 30
    lambda_memory_size = 512


class _WorkerBackedApp:
    """What `LocalGateway` needs of an app: its routes and binary types, and a call that runs
    the event in a worker process instead of this one."""

    def __init__(self, app: Chalice, pool: LambdaPool) -> None:
        self.routes = app.routes
        self.api = app.api
        self._pool = pool

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        return self._pool.invoke_blocking(API_HANDLER, event)


class LocalRestGateway:
    def __init__(self, app: Chalice, pool: LambdaPool, *, domain_name: str) -> None:
        self._gateway = LocalGateway(_WorkerBackedApp(app, pool), _LocalGatewayConfig())
        self._gateway.event_converter = RestEventConverter(
            self._gateway.event_converter._route_matcher, app.api.binary_types,
            domain_name=domain_name,
        )

    async def handle(self, request: web.Request) -> web.Response | None:
        """The app's reply, or None when no route of the app matches (so the caller may
        serve a static file instead)."""
        started = time.perf_counter()
        headers = {k: v for k, v in request.headers.items() if k.lower() != SOURCE_IP_HEADER}
        headers[SOURCE_IP_HEADER] = request.remote or "127.0.0.1"
        body = await request.read() or None
        try:
            reply = await asyncio.to_thread(self._gateway.handle_request, request.method,
                                            request.path_qs, headers, body)
        except LocalGatewayException as error:
            if error.CODE == 403 and b"Missing Authentication Token" in (error.body or b""):
                return None
            return web.Response(status=error.CODE, headers=error.headers, body=error.body)
        response = _to_response(reply)
        log.info("http %s %s -> %d (%.1f ms)", request.method, _loggable_path(request),
                 response.status, (time.perf_counter() - started) * 1000)
        return response

    @staticmethod
    def not_found(request: web.Request) -> web.Response:
        """API Gateway's answer for a path with no route."""
        log.info("http %s %s -> 403 (no route)", request.method, _loggable_path(request))
        return web.Response(status=403, content_type="application/json",
                            text='{"message": "Missing Authentication Token"}')


def _loggable_path(request: web.Request) -> str:
    # aiohttp percent-decodes the path: `%0D` or `%1B` would reach the log as a raw carriage
    # return or escape sequence, and a long path would fill a screen.
    return printable(request.path, limit=200)


def _to_response(reply: dict[str, Any]) -> web.Response:
    headers: list[tuple[str, str]] = list((reply.get("headers") or {}).items())
    for name, values in (reply.get("multiValueHeaders") or {}).items():
        headers.extend((name, value) for value in values)
    body = reply.get("body")
    if body is not None and reply.get("isBase64Encoded"):
        body = base64.b64decode(body)
    elif isinstance(body, str):
        body = body.encode("utf-8")
    return web.Response(status=int(reply["statusCode"]), headers=headers, body=body)
