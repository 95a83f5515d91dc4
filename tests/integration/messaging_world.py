"""A small world of users, devices and live connections for messaging tests: frames go in
through the real `$default` dispatcher, pushes land in a recording adapter."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from chalicelib.crypto import keyed_hash
from chalicelib.ids import new_id, new_user_id
from chalicelib.services import conversations, frames, presence
from chalicelib.services.context import Caller, Context
from chalicelib.storage import conversations as storage_conversations
from chalicelib.storage import users
from chalicelib.storage.connections import ConnectionRow
from chalicelib.storage.conversations import ACCEPTED
from chalicelib.storage.users import Device, User
from tests.support.fakes import RecordingPush


@dataclass(frozen=True)
class Person:
    user: User
    phone: str

    @property
    def id(self) -> str:
        return self.user.id


# Phones unique across the whole run, so worlds built on one database never share people.
_phone_numbers = itertools.count(1)


class World:
    def __init__(self, ctx: Context, push: RecordingPush) -> None:
        self.ctx = ctx
        self.push = push

    # --- people and their devices ---------------------------------------------------------

    def new_phone(self) -> str:
        """A phone nobody has used yet (no user, pending or active)."""
        return f"+1415555{next(_phone_numbers) % 10_000:04d}"

    def person(self) -> Person:
        phone = self.new_phone()
        now = self.ctx.clock.now_ms()
        user = self.ctx.db.run_transaction("t", users.get_or_create_user, new_id=new_id(),
                                          phone=phone, phone_key=self.phone_key(phone),
                                          now_ms=now, activate=True)
        return Person(user, phone)

    def make_pending(self, person: Person) -> None:
        """As if the person had only been added to a chat by someone, never logged in."""
        self.sql("UPDATE users SET activated_at = NULL WHERE id = %s", person.id)

    def reincarnate(self, person: Person) -> Person:
        """The person's account goes (as account deletion will do it) and the phone signs
        up again as a new user."""
        self.sql("DELETE FROM users WHERE id = %s", person.id)
        self.sql("UPDATE blocks SET blocked_user_id = NULL WHERE blocked_user_id = %s",
                 person.id)
        user = self.ctx.db.run_transaction(
            "t", users.get_or_create_user, new_id=new_user_id(), phone=person.phone,
            phone_key=self.phone_key(person.phone), now_ms=self.ctx.clock.now_ms(),
            activate=True)
        return Person(user, person.phone)

    def sql(self, statement: str, *params: Any) -> None:
        self.ctx.db.run_transaction("t", lambda txn: txn.execute(statement, params))

    def rows(self, table: str) -> list[dict[str, Any]]:
        def select(txn):
            txn.execute(f"SELECT * FROM {table}")
            return txn.fetchall()

        return self.ctx.db.run_read("t", select)

    def phone_key(self, phone: str) -> str:
        return keyed_hash(self.ctx.keys.phone, phone)

    def device(self, person: Person) -> Caller:
        """A new device of `person` with a live connection."""
        now = self.ctx.clock.now_ms()
        device = Device(new_id(), person.id, "device", 0, now, now, None)
        self.ctx.db.run_transaction("t", users.insert_device, device)
        connection_id = new_id()[-15:] + "="
        came_online = self.ctx.db.run_transaction("t", presence.connection_opened_txn,
                                                 ConnectionRow(connection_id, person.id,
                                                               device.id, now, now))
        if came_online:
            presence.announce(person.id, online=True, last_seen_at=now, ctx=self.ctx)
        return Caller(connection_id, person.id, device.id)

    def another_socket(self, caller: Caller) -> Caller:
        """A second live connection of the caller's device."""
        now = self.ctx.clock.now_ms()
        connection_id = new_id()[-15:] + "="
        self.ctx.db.run_transaction("t", presence.connection_opened_txn, ConnectionRow(
            connection_id, caller.user_id, caller.device_id, now, now))
        return Caller(connection_id, caller.user_id, caller.device_id)

    def disconnect(self, caller: Caller) -> None:
        presence.close_connection(caller.connection_id, self.ctx)

    def chat(self, owner: Person, *others: Person, ttl_seconds: int = 3600,
             accepted: bool = True) -> str:
        """A conversation the owner starts; by default every member has accepted it (people
        who know each other), else it is a request for those who share nothing with them."""
        fields = {"members": [p.phone for p in others], "ttl_seconds": ttl_seconds}
        if len(others) > 1 or not others:
            fields["title"] = "group"
        view, _ = conversations.create(owner.id, fields, self.ctx)
        if accepted:
            for other in others:
                self.ctx.db.run_transaction("t", storage_conversations.set_consent, view["id"],
                                           other.id, ACCEPTED)
        return view["id"]

    # --- frames -----------------------------------------------------------------------------

    def frame(self, caller: Caller, action: str, *, received_at: int | None = None,
              **fields: Any) -> None:
        # Raw UTF-8, as clients send it (PROTOCOL.md): \u escapes would triple a body.
        raw = json.dumps({"action": action, **fields}, ensure_ascii=False)
        frames.handle_frame(raw, caller.connection_id, self.ctx, received_at=received_at)

    def raw(self, caller: Caller, raw: str | None) -> None:
        frames.handle_frame(raw, caller.connection_id, self.ctx)

    def send(self, caller: Caller, conversation_id: str, body: str = "hello",
             client_msg_id: str | None = None, req: Any = None) -> None:
        fields = {"conversation_id": conversation_id, "body": body,
                  "client_msg_id": client_msg_id or new_id()}
        if req is not None:
            fields["req"] = req
        self.frame(caller, "send", **fields)

    def received(self, caller: Caller, frame_type: str | None = None) -> list[dict[str, Any]]:
        return [frame for cid, frame in self.push.frames
                if cid == caller.connection_id and (frame_type is None
                                                    or frame["type"] == frame_type)]

    def last(self, caller: Caller, frame_type: str) -> dict[str, Any]:
        found = self.received(caller, frame_type)
        assert found, f"no {frame_type} frame for {caller.connection_id}: {self.push.frames}"
        return found[-1]

    def forget_frames(self) -> None:
        self.push.frames.clear()

    def count(self, table: str) -> int:
        def count_txn(txn):
            txn.execute(f"SELECT COUNT(*) AS n FROM {table}")
            return txn.fetchone()["n"]

        return self.ctx.db.run_read("t", count_txn)
