"""`ephemera smoke --url URL`: the checks an operator runs right after a deploy.

Two throwaway users sign in, talk both ways, see each other's receipts and presence, retry a
send, and watch a 10 s message become unreadable and be announced `expired` by the cleanup.
One line per check with its time; any failed check makes the exit code 1 (a setup that cannot
even sign in exits with that failure's own code). On the local stage the codes come from
`/dev/outbox` and the random throwaway accounts are deleted at the end; elsewhere the codes come
from `--code-command` or a prompt, and users whose phones were given only sign out."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ephemera_client import exits
from ephemera_client.api import Api, CodeSource, command_codes, outbox_codes, prompted_codes
from ephemera_client.client import Client, Timing
from ephemera_client.errors import ApiError, ClientError
from ephemera_client.events import Event, Expired, Message, Presence, Receipt
from ephemera_client.session import MemorySession

DEFAULT_URL = "http://127.0.0.1:8000"
TTL_S = 10  # the shortest TTL the server allows
WAIT_S = 10.0  # for a push that should come at once
# Fictional US numbers (555-0100 to 555-0199 in any area code), valid to libphonenumber.
AREA_CODES = ("201", "202", "206", "212", "213", "303", "312", "404", "415", "503", "512",
              "617", "646", "702", "713", "718", "773", "805", "808", "917")
SMOKE_TIMING = Timing(max_backoff_s=2.0, coalesce_s=0.2)  # receipts go out within 0.2 s


@dataclass
class Check:
    name: str
    ok: bool
    ms: float
    detail: str = ""

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        detail = f"  {self.detail}" if self.detail else ""
        return f"{mark} {self.name:<52} {self.ms:>7.0f} ms{detail}"

    def as_json(self) -> str:
        return json.dumps({"check": self.name, "ok": self.ok, "ms": round(self.ms, 1),
                           "detail": self.detail}, ensure_ascii=False)


class CheckFailed(Exception):
    """A check saw something other than what it expected."""


class UsageProblem(Exception):
    """The flags cannot work against this server (say, no way to get a code)."""


class Watched:
    """A smoke user's client, its events collected for the checks to wait on."""

    def __init__(self, name: str, api: Api) -> None:
        self.name = name
        self.api = api
        self.seen: list[Event] = []
        self.client: Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def connect(self) -> None:
        """A new socket (a new `Client` on the same session), its events added to `seen`."""
        self.client = Client(self.api.url, api=self.api, timing=SMOKE_TIMING)
        self._reader = asyncio.create_task(self._read(self.client))
        await self.client.connect()

    async def _read(self, client: Client) -> None:
        try:
            async for event in client.events():
                self.seen.append(event)
                self._changed.set()
        except ClientError:
            pass  # signed out underneath: the checks that wait see nothing more

    async def wait_for(self, found: Callable[[Event], bool], what: str, *,
                       timeout_s: float = WAIT_S, since: int = 0) -> Event:
        deadline = time.monotonic() + timeout_s
        while True:
            self._changed.clear()
            for event in self.seen[since:]:
                if found(event):
                    return event
            since = len(self.seen)
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"{self.name} got no {what} within {round(timeout_s, 1):g} s")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    async def disconnect(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()  # closes the Api's HTTP session too; it reopens on next use
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    @property
    def user_id(self) -> str:
        return self.api.credentials().user_id


class Smoke:
    def __init__(self, args: argparse.Namespace, report: Callable[[Check], None]) -> None:
        self.args = args
        self.url = (args.url or os.environ.get("EPHEMERA_URL") or DEFAULT_URL).rstrip("/")
        self.report = report
        self.checks: list[Check] = []
        self.throwaway = not (args.phone_a or args.phone_b)
        self.phones = (args.phone_a or _throwaway_phone(), args.phone_b or _throwaway_phone())
        while self.phones[1] == self.phones[0]:
            self.phones = (self.phones[0], _throwaway_phone())
        self.a = Watched("a", Api(self.url, session=MemorySession()))
        self.b = Watched("b", Api(self.url, session=MemorySession()))
        self.codes: list[CodeSource] = []
        self.setup_error: ClientError | None = None
        self.chat_id = ""
        self.original_ttl: int | None = None
        self.ttl_changed = False
        self.sent_seq: dict[str, int] = {}  # the seq of each user's message, by name
        self.doomed_seq = 0
        self.expired_at: float | None = None  # when the TTL message was seen gone (monotonic)

    async def check(self, name: str, step: Callable[[], Awaitable[str | None]]) -> bool:
        started = time.monotonic()
        try:
            detail, ok = await step() or "", True
        except (CheckFailed, ClientError, TimeoutError) as failure:
            detail, ok = _describe(failure), False
            if isinstance(failure, ClientError) and self.setup_error is None:
                self.setup_error = failure
        result = Check(name, ok, (time.monotonic() - started) * 1000, detail)
        self.checks.append(result)
        self.report(result)
        return ok

    async def run(self) -> int:
        try:
            if not await self.check("sign in a and b", self._sign_in):
                return exits.exit_code_of(self.setup_error) if self.setup_error else exits.FAILED
            self.setup_error = None
            if not await self.check("open a 1:1 and connect both", self._open_chat):
                return exits.exit_code_of(self.setup_error) if self.setup_error else exits.FAILED
            await self._conversation_checks()
        finally:
            await self._clean_up()
        return exits.OK if all(check.ok for check in self.checks) else exits.FAILED

    async def _sign_in(self) -> str:
        local = await self._has_outbox()
        for user, phone in zip((self.a, self.b), self.phones, strict=True):
            self.codes.append(self._code_source(user.api, local))
            await user.api.login(phone, self.codes[-1], device_name=f"ephemera-smoke-{user.name}")
        return "codes from " + ("the command" if self.args.code_command
                                else "/dev/outbox" if local else "the prompt")

    async def _has_outbox(self) -> bool:
        """Whether this is the local stage (answers `/dev/outbox`); deployed stages 404."""
        try:
            await self.a.api.dev_outbox(self.phones[0])
            return True
        except ApiError as error:
            if error.status in (403, 404, 405):
                return False
            raise

    def _code_source(self, api: Api, local: bool) -> CodeSource:
        if self.args.code_command:
            return command_codes(self.args.code_command)
        if local:
            return outbox_codes(api)
        if self.throwaway or not (self.args.phone_a and self.args.phone_b):
            raise UsageProblem("this server has no /dev/outbox: give --phone-a and --phone-b "
                               "(phones that get texts) and --code-command, or type the codes")
        if self.args.no_prompt:
            raise UsageProblem("this server has no /dev/outbox and --no-prompt forbids asking: "
                               "give --code-command")
        return prompted_codes(_ask_on_stderr)

    async def _open_chat(self) -> str:
        chat = await self.a.api.create_conversation([self.phones[1]])
        self.chat_id, self.original_ttl = chat["id"], chat.get("ttl_seconds")
        await self.b.api.accept(self.chat_id)  # until then a would learn nothing of b
        await self.a.connect()
        await self.b.connect()  # a is online already: a hears of b's coming
        return ""

    async def _conversation_checks(self) -> None:
        a, b = self.a, self.b
        await self.check("presence: a sees b online", lambda: self._presence(a, b, True))
        ab = await self.check("message a → b", lambda: self._one_way(a, b))
        await self.check("message b → a", lambda: self._one_way(b, a))
        if ab:
            await self.check("delivered receipt: a sees b's", lambda: self._receipt("delivered"))
            await self.check("read receipt: a sees b's", lambda: self._receipt("read"))
        await self.check("retry with the same client_msg_id is stored once", self._retry)
        await self.check("presence: b sees a offline, then online", self._a_goes_and_comes)
        await self.check(f"{TTL_S} s TTL message: unreadable after expiry", self._unreadable)
        await self.check(f"{TTL_S} s TTL message: announced expired", self._announced)

    async def _presence(self, watcher: Watched, seen: Watched, online: bool,
                        since: int = 0) -> str:
        await watcher.wait_for(lambda e: isinstance(e, Presence) and e.online is online
                               and e.user_id == seen.user_id,
                               f"presence {'online' if online else 'offline'} of {seen.name}",
                               since=since)
        return ""

    async def _one_way(self, sender: Watched, receiver: Watched) -> str:
        assert sender.client is not None
        sent = await sender.client.send_and_wait(self.chat_id, f"smoke from {sender.name}")
        await receiver.wait_for(lambda e: isinstance(e, Message)
                                and e.message_id == sent.message_id, "message")
        self.sent_seq[sender.name] = sent.seq
        return f"seq {sent.seq}"

    async def _receipt(self, kind: str) -> str:
        seq = self.sent_seq["a"]
        if kind == "read":
            assert self.b.client is not None
            self.b.client.read(self.chat_id, seq)
        await self.a.wait_for(lambda e: isinstance(e, Receipt) and e.kind == kind
                              and e.user_id == self.b.user_id and e.seq >= seq,
                              f"{kind} receipt")
        return f"up to seq {seq}"

    async def _retry(self) -> str:
        assert self.a.client is not None
        client_msg_id = f"smoke-{secrets.token_hex(8)}"
        first = await self.a.client.send_and_wait(self.chat_id, "smoke retry",
                                                  client_msg_id=client_msg_id)
        again = await self.a.client.send_and_wait(self.chat_id, "smoke retry",
                                                  client_msg_id=client_msg_id)
        if not again.duplicate or again.message_id != first.message_id:
            raise CheckFailed("the retry was not answered as a duplicate of the first")
        stored = await self.b.api.history(self.chat_id, after_seq=first.seq - 1, limit=50)
        copies = [m for m in stored["messages"] if m.get("client_msg_id") == client_msg_id]
        if len(copies) != 1:
            raise CheckFailed(f"{len(copies)} copies stored")
        return "duplicate, same message_id, one copy stored"

    async def _a_goes_and_comes(self) -> str:
        since = len(self.b.seen)
        await self.a.disconnect()
        await self._presence(self.b, self.a, False, since)
        since = len(self.b.seen)
        await self.a.connect()
        await self._presence(self.b, self.a, True, since)
        return ""

    async def _unreadable(self) -> str:
        """Readable at first, gone from history once its TTL has passed on the server (reads
        filter by `expires_at`, whether or not the cleanup has run)."""
        assert self.a.client is not None
        await self.a.api.update_conversation(self.chat_id, ttl_seconds=TTL_S)
        self.ttl_changed = True
        sent = await self.a.client.send_and_wait(self.chat_id, f"smoke: gone in {TTL_S} s")
        sent_at = time.monotonic()
        self.doomed_seq = sent.seq
        await self.b.wait_for(lambda e: isinstance(e, Message)
                              and e.message_id == sent.message_id, "message")
        if not await self._in_history(sent.seq):
            raise CheckFailed("history omits it before its expiry")
        # It was created before its `sent` came: this waits past the server's expires_at.
        await asyncio.sleep(max(0.0, (sent.expires_at - sent.created_at) / 1000
                                - (time.monotonic() - sent_at)) + 1.0)
        self.expired_at = time.monotonic()
        if await self._in_history(sent.seq):
            raise CheckFailed("history still returns it after its expiry")
        return f"seq {sent.seq}: history has it, then omits it"

    async def _in_history(self, seq: int) -> bool:
        stored = await self.b.api.history(self.chat_id, after_seq=seq - 1, limit=1)
        return any(m["seq"] == seq for m in stored["messages"])

    async def _announced(self) -> str:
        if self.expired_at is None:
            raise CheckFailed("no expired message to wait for")
        seq = self.doomed_seq
        wait_s = max(0.0, self.args.expiry_wait - (time.monotonic() - self.expired_at))
        for user in (self.b, self.a):
            await user.wait_for(lambda e: isinstance(e, Expired)
                                and e.conversation_id == self.chat_id
                                and any(low <= seq <= high for low, high in e.ranges),
                                "`expired` (does the cleanup schedule run?)", timeout_s=wait_s)
        return f"to a and b, {time.monotonic() - self.expired_at:.1f} s after its expiry"

    async def _clean_up(self) -> None:
        """Random throwaway accounts are deleted (nothing is left behind); users whose phones
        were given only sign out (they may be someone's real accounts)."""
        for user in (self.a, self.b):
            await user.disconnect()
        try:
            if self.a.api.session.load() is None and self.b.api.session.load() is None:
                return
            if self.throwaway and len(self.codes) == 2:
                await self.check("clean up: delete both throwaway accounts", self._delete_both)
            else:
                await self.check("clean up: sign both out", self._sign_out_both)
        finally:
            for user in (self.a, self.b):
                await user.api.close()

    async def _delete_both(self) -> str:
        for user, codes in zip((self.a, self.b), self.codes, strict=True):
            if user.api.session.load() is not None:
                await user.api.delete_account(codes)
        return ""

    async def _sign_out_both(self) -> str:
        if self.ttl_changed and self.original_ttl not in (None, TTL_S):
            # given phones may be real people's: their chat keeps the TTL it had
            await self.a.api.update_conversation(self.chat_id, ttl_seconds=self.original_ttl)
        for user in (self.a, self.b):
            if user.api.session.load() is not None:
                await user.api.logout()
        return ""


def _throwaway_phone() -> str:
    return f"+1{secrets.choice(AREA_CODES)}55501{secrets.randbelow(100):02d}"


def _ask_on_stderr(prompt: str) -> str:
    """A prompt that keeps stdout for the checks' lines (`--json` readers parse it)."""
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline()


def _describe(failure: BaseException) -> str:
    if isinstance(failure, ApiError):
        return f"{failure.code}: {failure.message}"
    return str(failure) or type(failure).__name__


async def run_smoke(args: argparse.Namespace) -> int:
    def report(check: Check) -> None:
        print(check.as_json() if args.json else check.line(), flush=True)

    smoke = Smoke(args, report)
    try:
        code = await smoke.run()
    except UsageProblem as problem:
        print(f"ephemera smoke: {problem}", file=sys.stderr)
        return exits.USAGE
    if not args.json:
        failed = sum(not check.ok for check in smoke.checks)
        print(f"{len(smoke.checks) - failed} passed, {failed} failed against {smoke.url}")
    return code


def register(commands: argparse._SubParsersAction[Any]) -> None:
    text = ("check a stage end to end with two throwaway users: messages both ways, receipts, "
            "presence, an idempotent retry and a 10 s message's expiry (exit 1 if any fails)")
    parser = commands.add_parser("smoke", help=text, description=text)
    parser.set_defaults(run=run_smoke)
    parser.add_argument("--phone-a", help="the first user's phone (default: a random "
                        "fictional 555-01xx number, for stages whose codes come from "
                        "/dev/outbox or --code-command; such users are deleted at the end)")
    parser.add_argument("--phone-b", help="the second user's phone")
    parser.add_argument("--code-command", metavar="CMD",
                        help="a shell command that prints the code texted to the phone given "
                             "as its last argument (default: /dev/outbox, else a prompt)")
    parser.add_argument("--no-prompt", action="store_true",
                        help="never ask for a code: fail instead (for scripts)")
    parser.add_argument("--expiry-wait", type=float, default=90.0, metavar="SECONDS",
                        help="how long to wait after the expiry for the cleanup to announce it "
                             "(default 90: one run of a 60 s schedule, with room)")
    parser.add_argument("--json", action="store_true", help="one JSON object per check")
