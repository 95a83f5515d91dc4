"""`LocalDevApi`: the `/dev/*` routes of the local stage, answered only to this stack's own names.

`GET /dev/outbox?phone=` shows what the console SMS sender "sent", login codes included, so a
person or a test can log in without a phone. A page on any other site can reach it through DNS
rebinding: its name, re-pointed at 127.0.0.1, makes this port its own origin. But the browser
still sends that name in `Host`, so `/dev/*` refuses any Host but the stack's own, before it
reads anything. (The web client served here fetches the outbox from its own origin.)
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from chalicelib import bootstrap
from chalicelib.errors import EphemeraError, Forbidden
from chalicelib.phones import normalize_phone
from chalicelib.storage import outbox
from local_stack.ledger import SecretLedger
from local_stack.logtext import printable

log = logging.getLogger("local_stack")

PREFIX = "/dev/"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})


def own_host_headers(host: str, port: int) -> frozenset[str]:
    """The `Host` values that address this stack: `HOST:PORT`, and both loopback names when
    HOST is one of them (browsers are pointed at either). Without the port only on port 80,
    where browsers leave it out."""
    names = LOOPBACK_NAMES if host.lower() in LOOPBACK_NAMES else frozenset({host.lower()})
    bracketed = {f"[{name}]" if ":" in name else name for name in names}  # an IPv6 address
    with_port = {f"{name}:{port}" for name in bracketed}
    return frozenset(with_port | bracketed if port == 80 else with_port)


class LocalDevApi:
    def __init__(self, host: str, port: int) -> None:
        self._hosts = own_host_headers(host, port)
        self._address = f"{host}:{port}"

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(PREFIX + "outbox", dev_outbox)

    @web.middleware
    async def own_host_only(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Middleware: a `/dev/*` request addressed to another name gets 403 and nothing else.
        Any path the router would send to a `/dev/` route counts, however it was spelt."""
        resource = request.match_info.route.resource
        is_dev = request.path.startswith(PREFIX) or (
            resource is not None and resource.canonical.startswith(PREFIX))
        host = request.headers.get(hdrs.HOST, "")
        if not is_dev or host.lower() in self._hosts:
            return await handler(request)
        log.info("http %s %s -> 403 (Host %s is not this stack's)", request.method,
                 printable(request.path, limit=200), printable(host))
        refused = Forbidden(f"/dev/* answers only requests addressed to {self._address}.")
        return web.json_response({"error": refused.to_error()}, status=refused.status)


async def dev_outbox(request: web.Request) -> web.Response:
    """`GET /dev/outbox?phone=` (stage local only): what the console SMS sender "sent"."""
    raw = request.query.get("phone", "")
    if raw.startswith(" "):  # an unencoded '+' in a query string arrives as a space
        raw = "+" + raw.lstrip()
    try:
        phone = normalize_phone(raw)
    except EphemeraError as error:
        return web.json_response({"error": error.to_error()}, status=error.status)
    sent = await asyncio.to_thread(
        bootstrap.get_db().run_read, "dev.outbox", outbox.sms_for_phone, phone)
    if ledger := SecretLedger.from_env():
        ledger.note(sms.code for sms in sent)
    return web.json_response({"messages": [
        {"phone": sms.phone, "code": sms.code, "text": sms.text, "sent_at": sms.sent_at}
        for sms in sent
    ]})
