"""The Python client against the real local stack: what PROTOCOL promises, as a script sees it."""

from __future__ import annotations

import asyncio
import os
import random
import stat
from collections.abc import Callable

import pytest
import urllib3

from chalicelib.storage import connections
from ephemera_client.api import Api, outbox_codes
from ephemera_client.client import Client, Timing
from ephemera_client.errors import SignedOut
from ephemera_client.events import Event, Message, Presence, Receipt, Sent
from ephemera_client.session import FileSession, MemorySession

ALICE, BOB = "+14155550101", "+14155550102"
FAST = Timing(max_backoff_s=1.0, coalesce_s=0.2)


class Watched:
    """A client whose events are collected as they come, for a test to wait on."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[Event] = []
        self._reader: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for event in self.client.events():
                self.seen.append(event)
        except SignedOut as signed_out:
            self.failure = signed_out

    async def wait_for(self, condition: Callable[[], object], timeout_s: float = 10) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.02)

    def messages(self, conversation_id: str | None = None) -> list[Message]:
        return [e for e in self.seen if isinstance(e, Message)
                and conversation_id in (None, e.conversation_id)]

    def of(self, kind: type) -> list:
        return [e for e in self.seen if isinstance(e, kind)]

    async def close(self) -> None:
        await self.client.close()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)


async def signed_in(base_url: str, phone: str, session=None) -> Watched:
    api = Api(base_url, session=session or MemorySession())
    await api.login(phone, outbox_codes(api), device_name="script")
    return Watched(Client(base_url, api=api, timing=FAST))


async def connected(base_url: str, phone: str) -> Watched:
    watched = await signed_in(base_url, phone)
    await watched.client.connect()
    watched.start()
    return watched


def cut_sockets(base_url: str, stack_db, user_id: str) -> int:
    """What a dropped network looks like to the server: the stack closes the user's sockets."""
    ids = stack_db.run_read("t", connections.connection_ids_of_user, user_id)
    http = urllib3.PoolManager()
    for connection_id in ids:
        assert http.request("DELETE", f"{base_url}/local/@connections/{connection_id}").status \
            == 204
    return len(ids)


def test_two_scripts_sign_in_and_exchange_messages_both_ways(stack):
    async def scenario() -> None:
        alice, bob = await connected(stack.base_url, ALICE), await connected(stack.base_url, BOB)
        chat = await alice.client.api.create_conversation([BOB])
        sent = await alice.client.send_and_wait(chat["id"], "hello bob")
        await bob.wait_for(lambda: bob.messages(chat["id"]))
        reply = await bob.client.send_and_wait(chat["id"], "hello alice")
        await alice.wait_for(lambda: alice.messages(chat["id"]))

        [to_bob], [to_alice] = bob.messages(chat["id"]), alice.messages(chat["id"])
        assert (to_bob.body, to_bob.seq, to_bob.message_id) == ("hello bob", 1, sent.message_id)
        assert to_bob.sender_id == alice.client.user_id
        assert (to_alice.body, to_alice.seq, reply.seq) == ("hello alice", 2, 2)
        await alice.close()
        await bob.close()

    asyncio.run(scenario())


def test_receipts_reach_the_sender_and_presence_follows_the_partners_socket(stack):
    async def scenario() -> None:
        alice = await connected(stack.base_url, ALICE)
        chat = await alice.client.api.create_conversation([BOB])
        bob = await signed_in(stack.base_url, BOB)
        await bob.client.api.accept(chat["id"])  # until then, alice learns nothing of bob
        await bob.client.connect()
        bob.start()
        await alice.wait_for(lambda: any(p.online for p in alice.of(Presence)))

        sent = await alice.client.send_and_wait(chat["id"], "read me")
        await bob.wait_for(lambda: bob.messages(chat["id"]))
        bob.client.read(chat["id"], sent.seq)  # the client acks by itself; reading is the user's

        def receipt(kind: str) -> list[Receipt]:
            return [r for r in alice.of(Receipt) if r.kind == kind and r.seq == sent.seq
                    and r.user_id == bob.client.user_id]

        await alice.wait_for(lambda: receipt("delivered") and receipt("read"))
        await bob.close()
        await alice.wait_for(lambda: not alice.of(Presence)[-1].online)
        assert alice.of(Presence)[-1].user_id == bob.client.user_id
        await alice.close()

    asyncio.run(scenario())


def test_a_socket_cut_mid_stream_loses_nothing_and_duplicates_nothing(stack, stack_db):
    async def scenario() -> None:
        alice, bob = await connected(stack.base_url, ALICE), await connected(stack.base_url, BOB)
        chat = await alice.client.api.create_conversation([BOB])
        bodies = [f"line {n}" for n in range(16)]  # under a new account's 20 a minute
        for body in bodies[:8]:
            alice.client.send(chat["id"], body)
        await bob.wait_for(lambda: len(bob.messages()) >= 3)
        assert cut_sockets(stack.base_url, stack_db, bob.client.user_id) == 1
        assert cut_sockets(stack.base_url, stack_db, alice.client.user_id) == 1
        for body in bodies[8:]:
            alice.client.send(chat["id"], body)  # while both links come back
        await bob.wait_for(lambda: len(bob.messages()) >= len(bodies), timeout_s=20)
        await alice.wait_for(lambda: len(alice.of(Sent)) >= len(bodies), timeout_s=20)
        await asyncio.sleep(0.5)  # anything doubled would have arrived by now

        received = bob.messages(chat["id"])
        assert [m.body for m in received] == bodies
        assert [m.seq for m in received] == list(range(1, len(bodies) + 1))
        assert len({m.message_id for m in received}) == len(bodies)
        assert bob.client.reconnects >= 1 and alice.client.reconnects >= 1
        history = await bob.client.api.history(chat["id"], limit=50)
        assert [m["body"] for m in history["messages"]] == bodies  # stored once each, in order
        await alice.close()
        await bob.close()

    asyncio.run(scenario())


def test_a_backlog_written_while_offline_arrives_in_the_order_written(stack):
    async def scenario() -> None:
        bob = await connected(stack.base_url, BOB)
        alice = await signed_in(stack.base_url, ALICE)
        chat = await alice.client.api.create_conversation([BOB])
        backlog = [f"offline {n}" for n in range(12)]
        for body in backlog:  # no socket yet: the outbox keeps them, in order
            alice.client.send(chat["id"], body)
        assert len(alice.client.outbox) == len(backlog)
        await alice.client.connect()
        alice.start()
        await bob.wait_for(lambda: len(bob.messages()) >= len(backlog))
        # Pushed at once, the last `sent` and Bob's last message may arrive in either order.
        await alice.wait_for(lambda: len(alice.of(Sent)) >= len(backlog))

        assert [m.body for m in bob.messages(chat["id"])] == backlog
        assert [s.seq for s in alice.of(Sent)] == list(range(1, len(backlog) + 1))
        assert len(alice.client.outbox) == 0
        await alice.close()
        await bob.close()

    asyncio.run(scenario())


def test_a_revoked_device_ends_the_client_with_signed_out(stack):
    async def scenario() -> None:
        laptop = await connected(stack.base_url, ALICE)
        phone = await signed_in(stack.base_url, ALICE)
        # The laptop's access token is due: its next call must refresh, and the server refuses.
        credentials = laptop.client.api.session.load()
        credentials.access_expires_at = 0
        await phone.client.api.revoke_device(laptop.client.device_id)

        await laptop.wait_for(lambda: laptop.failure is not None, timeout_s=15)
        assert isinstance(laptop.failure, SignedOut)
        assert laptop.client.api.session.load() is None  # nothing left to refresh with
        with pytest.raises(SignedOut):
            await laptop.client.api.me()
        await laptop.close()
        await phone.client.close()

    asyncio.run(scenario())


def test_two_processes_of_one_profile_refresh_once_and_both_stay_signed_in(stack, tmp_path):
    async def scenario() -> None:
        path = tmp_path / "default.json"
        first = Api(stack.base_url, session=FileSession(path))
        await first.login(ALICE, outbox_codes(first))
        stored = first.session.load()
        stored.access_expires_at = 0  # due: both will want to refresh at once
        first.session.save(stored)
        second = Api(stack.base_url, session=FileSession(path))

        mine, theirs = await asyncio.gather(first.me(), second.me())

        assert mine["id"] == theirs["id"] == stored.user_id
        assert await first.me() == mine  # a re-used refresh token would have revoked the device
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        await first.close()
        await second.close()

    asyncio.run(scenario())


def test_a_restarted_client_resumes_from_its_saved_cursors(stack, tmp_path):
    async def scenario() -> None:
        alice = await connected(stack.base_url, ALICE)
        chat = await alice.client.api.create_conversation([BOB])
        session = FileSession(tmp_path / "bob.json")
        bob = await signed_in(stack.base_url, BOB, session=session)
        await bob.client.connect()
        bob.start()
        await alice.client.send_and_wait(chat["id"], "before the restart")
        await bob.wait_for(lambda: bob.messages())
        await bob.close()  # saves the cursors
        assert session.load().cursors == {chat["id"]: 1}

        await alice.client.send_and_wait(chat["id"], "while bob was away")
        again = Watched(Client(stack.base_url, session=session, timing=FAST))
        await again.client.connect()
        again.start()
        await again.wait_for(lambda: again.messages())
        await asyncio.sleep(0.3)
        assert [m.body for m in again.messages()] == ["while bob was away"]
        await again.close()
        await alice.close()

    asyncio.run(scenario())


def test_random_delivery_survives_a_random_cut(stack, stack_db):
    """A seeded variation of the cut: the cut lands at a different point of the stream."""
    cut_after = random.Random(7).randint(1, 6)

    async def scenario() -> None:
        alice, bob = await connected(stack.base_url, ALICE), await connected(stack.base_url, BOB)
        chat = await alice.client.api.create_conversation([BOB])
        for n in range(10):
            alice.client.send(chat["id"], f"n{n}")
            if n == cut_after:
                cut_sockets(stack.base_url, stack_db, bob.client.user_id)
        await bob.wait_for(lambda: len(bob.messages()) >= 10, timeout_s=20)
        assert [m.body for m in bob.messages()] == [f"n{n}" for n in range(10)]
        await alice.close()
        await bob.close()

    asyncio.run(scenario())
