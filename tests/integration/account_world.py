"""People who log in with texted codes and hold a live socket, for the account tests (deletion,
export): the real limiter and the local stage's outbox sender, on real MariaDB."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.sms import OutboxSmsSender
from chalicelib.clock import Clock
from chalicelib.identity import Principal
from chalicelib.ids import new_id
from chalicelib.services import auth, conversations, erasure, presence
from chalicelib.services.auth import Session
from chalicelib.services.context import Caller, Context
from chalicelib.services.limits import SlidingWindowLimiter, load_policies
from chalicelib.services.tokens import Tokens
from chalicelib.storage import conversations as storage_conversations
from chalicelib.storage import outbox
from chalicelib.storage.connections import ConnectionRow
from chalicelib.storage.database import Database
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush

IP = "203.0.113.7"


@dataclass
class Member:
    """A person who logged in on one device, with a live socket."""

    phone: str
    session: Session
    caller: Caller

    @property
    def id(self) -> str:
        return self.session.user.id

    @property
    def principal(self) -> Principal:
        return Principal(self.id, self.session.device_id)


def account_world(db: Database, clock: Clock, push: RecordingPush) -> World:
    """The real limiter (so sends leave rate-limit rows keyed by the user and connection) and
    the local stage's outbox sender (so codes leave outbox rows), as the local stack runs."""
    limiter = SlidingWindowLimiter(db=db, clock=clock, policies=load_policies({}))
    ctx = Context(db=db, push=push, clock=clock, limiter=limiter, keys=TEST_KEYS,
                  tokens=Tokens(key=TEST_KEYS.jwt, issuer="ephemera", audience="ephemera-api",
                                clock=clock),
                  sms=OutboxSmsSender(db=db, clock=clock, stage="local"))
    return World(ctx, push)


def texted(ctx: Context, phone: str) -> str:
    """The newest code texted to the phone, as its owner reads it."""
    return ctx.db.run_read("t", outbox.sms_for_phone, phone)[0].code


def sign_up(world: World, phone: str | None = None) -> Member:
    """Log in with a texted code, then open a socket on that device."""
    phone = phone or world.new_phone()
    challenge = auth.request_code(phone, IP, world.ctx)
    session = auth.verify_code(challenge["challenge_id"], texted(world.ctx, phone), "phone",
                               world.ctx)
    connection_id = new_id()[-15:] + "="
    now = world.ctx.clock.now_ms()
    world.ctx.db.run_transaction("t", presence.connection_opened_txn, ConnectionRow(
        connection_id, session.user.id, session.device_id, now, now))
    return Member(phone, session, Caller(connection_id, session.user.id, session.device_id))


def deletion_code(world: World, member: Member) -> dict[str, str]:
    challenge = erasure.request_code(member.principal, IP, world.ctx)
    return {"challenge_id": challenge["challenge_id"], "code": texted(world.ctx, member.phone)}


def delete(world: World, member: Member) -> None:
    erasure.delete_account(member.principal, deletion_code(world, member), world.ctx)


def chat(world: World, owner: Member, *others: Member, title: str | None = None) -> str:
    fields: dict[str, Any] = {"members": [o.phone for o in others], "ttl_seconds": 3600}
    if title:
        fields["title"] = title
    view, _ = conversations.create(owner.id, fields, world.ctx)
    for other in others:
        world.ctx.db.run_transaction("t", storage_conversations.set_consent, view["id"],
                                     other.id, "accepted")
    return view["id"]
