"""The cast of the authorization matrix (test_authorization_matrix.py): one small world with a
person in every position a caller can hold, built once for the module; after each cell the
tables it changed are put back, row for row, so every cell starts from the same state and a
refused one can prove it changed nothing.

    group G   owner, admin, member, plain (another member, a target), blocked (a member),
              requested (added by a stranger and has not accepted), declined (said no),
              removed (was a member, sent message 1, then the owner removed them). The
              member has sent message 2.
    direct D  member and blocked; the member has blocked them.
    outsider  in nothing. blocks_everyone: in nothing, has blocked every one of the above.

Each caller has a phone with an open socket; the member also has a tablet (a device to revoke)
and a revoked phone whose socket is still open (a revocation racing a frame).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from chalicelib import bootstrap
from chalicelib.clock import Clock, FixedClock
from chalicelib.services import account, conversations, membership
from chalicelib.services.context import Caller
from chalicelib.services.tokens import Tokens
from chalicelib.storage import users
from chalicelib.storage.database import Database
from tests.integration.messaging_world import Person, World
from tests.support.fakes import RecordingPush

# The callers of the matrix's columns, as they stand in group G.
CALLERS = ("owner", "admin", "member", "requested", "declined", "removed", "outsider", "blocked")
REMOVED_MESSAGE_ID, REMOVED_BODY = "removed-msg-0001", "before I was removed"  # seq 1
MEMBER_MESSAGE_ID, MEMBER_BODY = "member-msg-0001", "hello group"  # seq 2
IGNORED_TABLES = {"schema_migrations"}
# What a refused call may still change: its own rate-limit counts, and a socket's liveness.
UNGUARDED = {"rate_limit_windows": None, "connections": {"last_seen_at", "silent"}}


@dataclass
class Cast:
    world: World
    group: str
    direct: str
    people: dict[str, Person]  # CALLERS, plus "plain" and "blocks_everyone"
    sockets: dict[str, Caller]  # each caller's phone, with an open socket
    tablet: Caller  # the member's second device
    revoked: Caller  # the member's revoked phone; its socket row is still there

    def connection_ids(self) -> list[str]:
        return [c.connection_id for c in (*self.sockets.values(), self.tablet, self.revoked)]

    def access_token(self, caller: Caller) -> str:
        return bootstrap.get_tokens().access_token(caller.user_id, caller.device_id, 0)

    def expired_token(self, caller: Caller) -> str:
        """Issued properly an hour ago: 15 minutes of life, long gone."""
        return tokens_at(self.world.ctx.clock.now_ms() - 3_600_000).access_token(
            caller.user_id, caller.device_id, 0)

    def forged_token(self, caller: Caller) -> str:
        return forged_tokens(self.world.ctx.clock).access_token(caller.user_id,
                                                                caller.device_id, 0)


def forged_tokens(clock: Clock) -> Tokens:
    """Well-formed tokens and tickets, signed with a key that is not the server's."""
    config = bootstrap.get_config()
    return Tokens(key=b"not-the-server-key-" + b"x" * 32, issuer=config.jwt_issuer,
                  audience=config.jwt_audience, clock=clock)


def tokens_at(now_ms: int) -> Tokens:
    """The server's own token issuer with its clock stopped at `now_ms`."""
    config = bootstrap.get_config()
    return Tokens(key=bootstrap.get_keys().jwt, issuer=config.jwt_issuer,
                  audience=config.jwt_audience, clock=FixedClock(now_ms))


def app_world() -> World:
    """A World on the app's own context (database, keys, clock, limits), pushes recorded."""
    push = RecordingPush()
    return World(replace(bootstrap.get_context(), push=push), push)


def build_cast(world: World) -> Cast:
    ctx = world.ctx
    people = {name: world.person() for name in (*CALLERS, "plain", "blocks_everyone")}
    sockets = {name: world.device(people[name]) for name in CALLERS}
    owner, member, blocked = people["owner"], people["member"], people["blocked"]
    in_group = ("admin", "member", "plain", "blocked", "requested", "declined", "removed")
    group = world.chat(owner, *(people[name] for name in in_group), accepted=False)
    for name in ("admin", "member", "plain", "blocked", "removed"):
        conversations.accept(people[name].id, group, ctx)
    conversations.decline(people["declined"].id, group, {}, ctx)
    membership.change_role(owner.id, group, people["admin"].id, {"role": "admin"}, ctx)
    world.send(sockets["removed"], group, body=REMOVED_BODY, client_msg_id=REMOVED_MESSAGE_ID)
    membership.remove_member(owner.id, group, people["removed"].id, ctx)
    world.send(sockets["member"], group, body=MEMBER_BODY, client_msg_id=MEMBER_MESSAGE_ID)
    direct = world.chat(member, blocked)
    account.block(member.id, {"user_id": blocked.id}, ctx)
    for name in CALLERS:
        account.block(people["blocks_everyone"].id, {"user_id": people[name].id}, ctx)
    tablet, revoked = world.device(member), world.device(member)
    ctx.db.run_transaction("t", users.revoke_device, revoked.device_id, ctx.clock.now_ms())
    world.forget_frames()
    return Cast(world, group, direct, people, sockets, tablet, revoked)


# --- the state, saved and put back ----------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Every row of every table, with each table's checksum: one CHECKSUM TABLE statement
    tells which tables a cell changed, and only those are put back."""

    rows: dict[str, list[dict[str, Any]]]
    checksums: dict[str, int]
    sockets: list[tuple]

    @classmethod
    def take(cls, db: Database) -> Snapshot:
        return cls(all_rows(db), checksums(db), sockets(db))

    def changed(self, db: Database, since: dict[str, int] | None = None) -> set[str]:
        now = checksums(db)
        return {table for table, value in (since or self.checksums).items()
                if now[table] != value}

    def refusal_changed(self, db: Database, since: dict[str, int] | None = None) -> set[str]:
        """The tables a refused call changed, beyond what any call may (UNGUARDED)."""
        changed = self.changed(db, since) - {t for t, cols in UNGUARDED.items() if cols is None}
        if "connections" in changed and sockets(db) == self.sockets:
            changed.discard("connections")  # only a liveness time moved
        return changed

    def put_back(self, db: Database) -> None:
        """The tables a cell changed, as they were."""
        changed = self.changed(db)
        if changed:
            db.run_transaction("t", _put_back_txn, {t: self.rows[t] for t in changed})


def all_rows(db: Database) -> dict[str, list[dict[str, Any]]]:
    def read(txn) -> dict[str, list[dict[str, Any]]]:
        saved = {}
        for table in tables(txn):
            txn.execute(f"SELECT * FROM `{table}`")
            saved[table] = list(txn.fetchall())
        return saved

    return db.run_read("t", read)


def tables(txn) -> list[str]:
    txn.execute("SHOW TABLES")
    return sorted(set(next(iter(row.values())) for row in txn.fetchall()) - IGNORED_TABLES)


def checksums(db: Database) -> dict[str, int]:
    def read(txn) -> dict[str, int]:
        txn.execute(f"CHECKSUM TABLE {', '.join(f'`{t}`' for t in tables(txn))}")
        return {row["Table"].split(".")[-1]: row["Checksum"] for row in txn.fetchall()}

    return db.run_read("t", read)


def sockets(db: Database) -> list[tuple]:
    """Which connections exist, for whom: what a refusal must not change about them."""
    def read(txn) -> list[tuple]:
        txn.execute("SELECT id, user_id, device_id FROM connections ORDER BY id")
        return [tuple(row.values()) for row in txn.fetchall()]

    return db.run_read("t", read)


def _put_back_txn(txn, saved: dict[str, list[dict[str, Any]]]) -> None:
    for table, rows in saved.items():
        txn.execute(f"DELETE FROM `{table}`")
        if rows:
            columns = list(rows[0])
            one = "(" + ", ".join(["%s"] * len(columns)) + ")"
            txn.execute(f"INSERT INTO `{table}` ({', '.join(columns)})"
                        f" VALUES {', '.join([one] * len(rows))}",
                        [row[c] for row in rows for c in columns])
