"""Wires the local stack together on one port: `/ws`, `/local/@connections/{id}`, the
fan-out queue at `/local/sqs`, `/dev/*`, the web client at `/`, and every other path to the
Chalice app's REST routes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from local_stack.dev import LocalDevApi
from local_stack.events import WebsocketEventConverter, scheduled_event
from local_stack.lambdas import LambdaPool, scheduled_functions
from local_stack.management import LocalManagementApi
from local_stack.queue import LocalQueue
from local_stack.rest import LocalRestGateway
from local_stack.websocket import MAX_QUEUED_FRAMES, LocalWebsocketGateway

log = logging.getLogger("local_stack")

WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"


@dataclass(frozen=True)
class StackSettings:
    host: str
    port: int
    workers: int
    expiry_interval_s: int
    idle_timeout_s: int
    max_connection_s: int
    max_queued_frames: int = MAX_QUEUED_FRAMES
    web_dist: Path = WEB_DIST
    schedule: bool = True  # False (LOCAL_SCHEDULE=off): no cleanup, presence sweep or timers
    fanout_workers: int = 2  # the fan-out queue's function runs in containers of its own
    queue_visibility_s: float = 30.0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"


def build_app(settings: StackSettings, pool: LambdaPool) -> web.Application:
    from app import app as chalice_app  # routes and schedules only; handlers run in workers

    domain = f"{settings.host}:{settings.port}"
    gateway = LocalWebsocketGateway(
        pool, WebsocketEventConverter(domain), routes=set(chalice_app.websocket_handlers),
        idle_timeout_s=settings.idle_timeout_s, max_connection_s=settings.max_connection_s,
        max_queued_frames=settings.max_queued_frames,
    )
    rest = LocalRestGateway(chalice_app, pool, domain_name=domain)
    web_client = LocalWebClient(settings)
    dev = LocalDevApi(settings.host, settings.port)
    application = web.Application(client_max_size=10 * 1024 * 1024,  # API Gateway's payload cap
                                  middlewares=[dev.own_host_only])
    application.router.add_get("/ws", gateway.handle_upgrade)
    LocalManagementApi(gateway).add_routes(application.router)
    subscribed = queue_subscriptions(chalice_app, settings)
    for queue, _ in subscribed:
        queue.add_routes(application.router)
    dev.add_routes(application.router)

    async def everything_else(request: web.Request) -> web.StreamResponse:
        response = await rest.handle(request)
        if response is not None:
            return response
        return web_client.serve(request) or rest.not_found(request)

    # `[\s\S]`, not `.`: a path with a newline (`%0A`) is a path like any other for API
    # Gateway; with `.` aiohttp's router answered it a plain-text 404 of its own.
    application.router.add_route("*", r"/{tail:[\s\S]*}", everything_else)

    async def background(app_: web.Application) -> AsyncIterator[None]:
        # Each scheduled function runs in a container of its own, as each is a Lambda function
        # of its own on AWS: the presence watch waits through most of each minute, and on the
        # shared pool it would hold a worker that requests and frames need.
        pool.attach(asyncio.get_running_loop())  # REST requests reach it from threads
        names = scheduled_functions() if settings.schedule else []
        schedule_pools = {name: LambdaPool(1) for name in names}
        tasks = [asyncio.create_task(gateway.enforce_limits_forever())]
        tasks += [asyncio.create_task(run_schedule(schedule_pool, name, settings.expiry_interval_s))
                  for name, schedule_pool in schedule_pools.items()]
        # Each queue's function in containers of its own, one poller per container (they
        # import the app from the start, so a first big send waits on no import).
        queue_pools = {function: LambdaPool(settings.fanout_workers) for _, function in subscribed}
        tasks += [asyncio.create_task(queue.poll_forever(queue_pools[function], function))
                  for queue, function in subscribed for _ in range(settings.fanout_workers)]
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for stopped_pool in [*schedule_pools.values(), *queue_pools.values()]:
            stopped_pool.stop_now()

    async def close_sockets(app_: web.Application) -> None:
        # On shutdown, before aiohttp waits for handlers: an open socket's handler only ends
        # when the socket does (each close still sends its $disconnect).
        await gateway.close_all()

    application.cleanup_ctx.append(background)
    application.on_shutdown.append(close_sockets)
    return application


def queue_subscriptions(chalice_app: Any, settings: StackSettings) -> list[tuple[LocalQueue, str]]:
    """A local queue for each function the app subscribes to an SQS queue, by queue name."""
    return [(LocalQueue(source.queue, visibility_timeout_s=settings.queue_visibility_s,
                        batch_size=source.batch_size), source.name)
            for source in chalice_app.event_sources if getattr(source, "queue", None)]


async def run_schedule(pool: LambdaPool, function: str, interval_s: int) -> None:
    """Fire a scheduled function every `interval_s` at a fixed rate, as EventBridge does (a
    run that takes part of the interval, like the presence watch, does not push the next one
    later), never two runs at once (as the deployed function's reserved concurrency of 1
    ensures)."""
    loop = asyncio.get_running_loop()
    next_run = loop.time() + interval_s
    while True:
        await asyncio.sleep(max(0.0, next_run - loop.time()))
        next_run = max(next_run + interval_s, loop.time())
        try:
            result = await pool.invoke(function, scheduled_event(function))
            log.info("cron %s -> %s", function, json.dumps(result))
        except Exception:
            log.exception("cron %s failed", function)


class LocalWebClient:
    """The built web client (`web/dist`), with the stack's addresses injected into its page.
    Until a client is built, `/` says how to reach the API instead.

    The page carries a strict Content-Security-Policy: scripts only from this origin plus the one
    injected config script (allowed by its hash), connections only to this origin's HTTP and
    WebSocket, no plugins, no framing. A message body that slipped past React's escaping could
    still run nothing."""

    def __init__(self, settings: StackSettings) -> None:
        self._dist = settings.web_dist
        self._config = {"apiBaseUrl": settings.base_url, "wsUrl": settings.ws_url,
                        "stage": "local"}
        self._config_script = f"window.EPHEMERA_CONFIG = {json.dumps(self._config)};"
        script_hash = base64.b64encode(
            hashlib.sha256(self._config_script.encode()).digest()).decode()
        ws_origin = settings.ws_url.removesuffix("/ws")
        self._page_headers = {
            "Content-Security-Policy": (
                f"default-src 'self'; script-src 'self' 'sha256-{script_hash}'; "
                f"connect-src 'self' {ws_origin}; img-src 'self' data:; style-src 'self'; "
                "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }

    def serve(self, request: web.Request) -> web.StreamResponse | None:
        if request.method not in ("GET", "HEAD"):
            return None
        relative = request.path.lstrip("/")
        if relative:
            built = self._built_file(relative)
            if built is not None:
                return web.FileResponse(built)
            if "." in relative.rsplit("/", 1)[-1] or "text/html" not in request.headers.get(
                    "Accept", ""):
                return None  # a missing asset or API path, not a page of the client
        return web.Response(text=self._index(), content_type="text/html",
                            headers=self._page_headers)

    def _built_file(self, relative: str) -> Path | None:
        """The file of `web/dist` at `relative`, or None. A path no file can have (a NUL byte, a
        name too long for the file system) is just not a file, never an error answering 500."""
        try:
            candidate = (self._dist / relative).resolve()
            is_file = candidate.is_file()
        except (OSError, ValueError):
            return None
        return candidate if is_file and self._dist.resolve() in candidate.parents else None

    def _index(self) -> str:
        index = self._dist / "index.html"
        script = f"<script>{self._config_script}</script>"
        if index.is_file():
            return index.read_text(encoding="utf-8").replace("</head>", f"{script}</head>", 1)
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Ephemera (local)</title>"
            f"{script}</head><body><h1>Ephemera is running</h1>"
            "<p>The web client is not built yet. The REST API is at this address, the WebSocket"
            f" at <code>{self._config['wsUrl']}</code>; try <a href='/health'>/health</a>.</p>"
            "</body></html>"
        )
