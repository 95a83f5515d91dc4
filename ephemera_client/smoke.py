"""`ephemera smoke --url URL`: the checks an operator runs right after a deploy.

Two throwaway users sign up, talk both ways, see each other's receipts and presence, retry a
send, and watch a 10 s message become unreadable and be announced `expired` by the cleanup.
One line per check with its time; any failure makes the exit code 1. On the local stage the
codes come from `/dev/outbox` and both accounts are deleted at the end; elsewhere they come from
`--code-command` or a prompt, and the users only sign out."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ephemera_client import exits
from ephemera_client.api import (
    Api,
    CodeSource,
    command_codes,
    outbox_codes,
    prompted_codes,
)
from ephemera_client.client import Client, Timing
from ephemera_client.errors import ApiError, ClientError
from ephemera_client.events import Event, Expired, Message, Presence, Receipt
from ephemera_client.session import MemorySession

DEFAULT_URL = "http://127.0.0.1:8000"
TTL_S = 10  # the shortest TTL the server allows
WAIT_S = 10  # for a push that should come at once
SMOKE_TIMING = Timing(max_backoff_s=2.0, coalesce_s=0.2)


@dataclass
class Check:
    name: str
    ok: bool
    ms: float
    detail: str = ""

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        detail = f"  {self.detail}" if self.detail else ""
        return f"{mark} {self.name:<48} {self.ms:>7.0f} ms{detail}"

    def as_json(self) -> str:
        return json.dumps({"check": self.name, "ok": self.ok, "ms": round(self.ms, 1),
                           "detail": self.detail})


class CheckFailed(Exception):
    """A check saw something other than what it expected."""


class Watched:
    """A smoke user's client, its events collected for the checks to wait on."""

    def __init__(self, name: str, client: Client) -> None:
        self.name = name
        self.client = client
        self.seen: list[Event] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.connect()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.client.events():
            self.seen.append(event)

    async def wait_for(self, found: Callable[[Event], bool], timeout_s: float,
                       what: str) -> Event:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.seen:
                if found(event):
                    return event
            await asyncio.sleep(0.02)
        raise CheckFailed(f"{self.name} got no {what} within {timeout_s:.0f} s")

    async def close(self) -> None:
        await self.client.close()
        if self._reader is not None:
            self._reader.cancel()


class Smoke:
    def __init__(self, args: argparse.Namespace, report: Callable[[Check], None]) -> None:
        self.args = args
        self.url = (args.url or os.environ.get("EPHEMERA_URL") or DEFAULT_URL).rstrip("/")
        self.report = report
        self.checks: list[Check] = []

    async def check(self, name: str, step: Callable[[], Awaitable[str | None]]) -> bool:
        started = time.monotonic()
        try:
            detail, ok = await step() or "", True
        except (CheckFailed, ClientError, TimeoutError) as failure:
            detail, ok = str(failure) or type(failure).__name__, False
        result = Check(name, ok, (time.monotonic() - started) * 1000, detail)
        self.checks.append(result)
        self.report(result)
        return ok

    async def run(self) -> int:
        local = await self._is_local_stage()
        phones = self.args.phone_a or _throwaway_phone(), self.args.phone_b or _throwaway_phone()
        apis = [Api(self.url, session=MemorySession()) for _ in phones]
        codes = [self._code_source(api, local) for api in apis]
        users: list[Watched] = []
        try:
            async def sign_in() -> str:
                for name, api, phone, code in zip("ab", apis, phones, codes, strict=True):
                    await api.login(phone, code, device_name=f"smoke-{name}")
                    users.append(Watched(name, Client(self.url, api=api, timing=SMOKE_TIMING)))
                return ""

            if not await self.check("sign in a and b", sign_in):
                return exits.FAILED
            await self._conversation_checks(*users)
        finally:
            for user, code in zip(users, codes, strict=False):
                await user.close()
                await self._clean_up(user.client.api, code, local)
        return exits.OK if all(check.ok for check in self.checks) else exits.FAILED

    async def _conversation_checks(self, a: Watched, b: Watched) -> None:
        chat: dict[str, Any] = {}

        async def open_chat() -> str:
            chat.update(await a.client.api.create_conversation([b.client.api.credentials().phone]))
            await b.client.api.accept(chat["id"])  # until then a would learn nothing of b
            await a.start()
            await b.start()
            return f"conversation {chat['id']}"

        if not await self.check("open a 1:1 and connect both", open_chat):
            return
        conversation_id = chat["id"]

        async def presence_online() -> str:
            await a.wait_for(lambda e: isinstance(e, Presence) and e.online
                             and e.user_id == b.client.user_id, WAIT_S, "presence of b")
            return ""

        async def one_way(sender: Watched, receiver: Watched) -> str:
            body = f"smoke from {sender.name}"
            sent = await sender.client.send_and_wait(conversation_id, body)
            await receiver.wait_for(lambda e: isinstance(e, Message)
                                    and e.message_id == sent.message_id, WAIT_S, "message")
            return f"seq {sent.seq}"

        async def receipt(kind: str) -> str:
            newest = max(e.seq for e in b.seen if isinstance(e, Message))
            if kind == "read":
                b.client.read(conversation_id, newest)
            await a.wait_for(lambda e: isinstance(e, Receipt) and e.kind == kind
                             and e.user_id == b.client.user_id and e.seq >= newest,
                             WAIT_S, f"{kind} receipt")
            return f"up to seq {newest}"

        async def idempotent_retry() -> str:
            first = await a.client.send_and_wait(conversation_id, "smoke retry",
                                                 client_msg_id="smoke-retry-0001")
            again = await a.client.send_and_wait(conversation_id, "smoke retry",
                                                 client_msg_id="smoke-retry-0001")
            if not again.duplicate or again.message_id != first.message_id:
                raise CheckFailed("the retry was stored again")
            stored = await a.client.api.history(conversation_id, limit=50)
            copies = [m for m in stored["messages"] if m["client_msg_id"] == "smoke-retry-0001"]
            if len(copies) != 1:
                raise CheckFailed(f"{len(copies)} copies stored")
            return "duplicate, one copy stored"

        await self.check("b is shown online to a", presence_online)
        await self.check("message a → b", lambda: one_way(a, b))
        await self.check("message b → a", lambda: one_way(b, a))
        await self.check("delivered receipt reaches a", lambda: receipt("delivered"))
        await self.check("read receipt reaches a", lambda: receipt("read"))
        await self.check("a retried send is stored once", idempotent_retry)
        await self._expiry_checks(a, conversation_id)

        async def presence_offline() -> str:
            await b.close()
            await a.wait_for(lambda e: isinstance(e, Presence) and not e.online
                             and e.user_id == b.client.user_id, WAIT_S, "offline of b")
            return ""

        await self.check("b is shown offline once gone", presence_offline)

    async def _expiry_checks(self, a: Watched, conversation_id: str) -> None:
        doomed: dict[str, Any] = {}

        async def unreadable() -> str:
            await a.client.api.update_conversation(conversation_id, ttl_seconds=TTL_S)
            sent = await a.client.send_and_wait(conversation_id, "smoke: gone in 10 s")
            doomed.update(seq=sent.seq, expires_at=sent.expires_at)
            pong = await a.client.ping()  # the server's clock, not ours
            await asyncio.sleep(max(0.0, (sent.expires_at - pong["server_time"]) / 1000) + 0.5)
            stored = await a.client.api.history(conversation_id, limit=50)
            if any(m["seq"] == sent.seq for m in stored["messages"]):
                raise CheckFailed("history still returns it after its expiry")
            return f"seq {sent.seq}, {TTL_S} s TTL"

        async def announced() -> str:
            if not doomed:
                raise CheckFailed("no message to wait for")
            seq = doomed["seq"]
            await a.wait_for(
                lambda e: isinstance(e, Expired) and any(low <= seq <= high
                                                         for low, high in e.ranges),
                self.args.expiry_wait, "expired frame (is the cleanup schedule running?)")
            return f"seq {seq}"

        await self.check(f"a {TTL_S} s message is unreadable once expired", unreadable)
        await self.check("the cleanup announces it expired", announced)

    async def _is_local_stage(self) -> bool:
        api = Api(self.url)
        try:
            await api.call("GET", "/health", auth=False)
            await api.dev_outbox("+10000000000")
            return True
        except ApiError as error:
            if error.status in (400, 404):
                return error.status == 400  # /dev/outbox exists but disliked the phone
            raise
        finally:
            await api.close()

    def _code_source(self, api: Api, local: bool) -> CodeSource:
        if self.args.code_command:
            return command_codes(self.args.code_command)
        if local:
            return outbox_codes(api)
        return prompted_codes()

    async def _clean_up(self, api: Api, code: CodeSource, local: bool) -> None:
        """Throwaway users go: deleted where the codes are at hand, else signed out."""
        try:
            if local and not self.args.code_command:
                await api.delete_account(code)
            else:
                await api.logout()
        except ClientError:
            pass  # a failed clean-up must not hide the checks' verdict
        finally:
            await api.close()


def _throwaway_phone() -> str:
    return f"+1415555{random.randint(0, 9999):04d}"


async def run_smoke(args: argparse.Namespace) -> int:
    def report(check: Check) -> None:
        print(check.as_json() if args.json else check.line(), flush=True)

    smoke = Smoke(args, report)
    code = await smoke.run()
    if not args.json:
        failed = sum(not check.ok for check in smoke.checks)
        print(f"{len(smoke.checks) - failed} passed, {failed} failed against {smoke.url}")
    return code


def register(commands: argparse._SubParsersAction) -> None:
    text = ("check a stage end to end with two throwaway users: messages both ways, receipts, "
            "presence, an idempotent retry and a 10 s message's expiry (exit 1 if any fails)")
    parser = commands.add_parser("smoke", help=text, description=text)
    parser.set_defaults(run=run_smoke)
    parser.add_argument("--phone-a", help="the first user's phone (default: a random "
                        "fictional number, for stages whose codes come from /dev/outbox)")
    parser.add_argument("--phone-b", help="the second user's phone")
    parser.add_argument("--code-command", metavar="CMD",
                        help="a shell command that prints the code texted to the phone given "
                             "as its last argument (default: /dev/outbox, else a prompt)")
    parser.add_argument("--expiry-wait", type=float, default=90.0, metavar="SECONDS",
                        help="how long to wait for the cleanup to announce the expiry "
                             "(default 90: one run of a 60 s schedule, with room)")
    parser.add_argument("--json", action="store_true", help="one JSON object per check")
