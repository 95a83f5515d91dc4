"""Who may do what: every REST route and every WebSocket action, crossed with every kind of
caller, each cell with the outcome PROTOCOL.md promises. The tables below are the spec (read a
row across: who gets what); the tests under them run every cell on MariaDB, REST through
Chalice's test client and frames through the real `$default` dispatcher. A refused cell must
also change nothing and tell nobody. docs/SECURITY.md ("Who may do what") points here.

The cast is in authorization_cast.py: a group G with an owner, an admin, a member, a requested
member (a stranger added them; not accepted), one who declined, one the owner removed, and a
member whom the member has blocked; a direct chat D between the member and that blocked user;
an outsider in nothing; and someone outside everything who has blocked every caller.

Outcomes: a REST status (its error code is the protocol's for that status), with what the
reply showed when a row looks at it ("200 listed"); for frames, the error code the caller got,
or what happened instead ("sent", "pong", "sync with G", "passed on").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from string import Template
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.identity import Principal
from chalicelib.ids import new_id
from chalicelib.services import erasure
from chalicelib.services import typing as typing_service
from chalicelib.services.context import Caller
from chalicelib.storage import outbox
from tests.conftest import TEST_JWT_SECRET, empty_tables
from tests.integration.authorization_cast import (
    CALLERS,
    MEMBER_BODY,
    MEMBER_MESSAGE_ID,
    REMOVED_BODY,
    REMOVED_MESSAGE_ID,
    Cast,
    Snapshot,
    app_world,
    build_cast,
    checksums,
    forged_tokens,
    sockets,
    tokens_at,
)
from tests.integration.test_auth_routes import connect
from tests.integration.test_conversation_routes import Api
from tests.support.management_api import RecordingManagementApi

OUTSIDERS = ("declined", "removed", "outsider")  # not (or no longer) in G: all alike
LOGGED_OUT = ("revoked", "closed")  # a revoked device's open socket; a socket with no row
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"}


@dataclass(frozen=True)
class Row:
    """One route or action (its body's $placeholders filled per caller, see `Values`) and its
    outcome for each caller."""

    what: str  # "METHOD /path" or a frame's action, with $placeholders
    body: dict[str, Any] | None = None
    outcomes: dict[str, int | str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.what} {json.dumps(self.body)}" if self.body else self.what


def row(what: str, body: dict[str, Any] | None = None, *, columns: tuple[str, ...] = CALLERS,
        everyone: int | str | None = None, outsiders: int | str | None = None,
        logged_out: int | str | None = None, others: int | str | None = None,
        **named: int | str) -> Row:
    """A row of the table: the columns named one by one win; then `outsiders` (declined,
    removed, outsider) and `logged_out` (revoked, closed); then `everyone` or `others` (the
    same thing, every column left: whichever reads better)."""
    outcomes = {}
    for column in columns:
        group = (outsiders if column in OUTSIDERS else
                 logged_out if column in LOGGED_OUT else None)
        outcome = next((o for o in (named.get(column), group, everyone, others)
                        if o is not None), None)
        assert outcome is not None, f"{what}: no outcome for {column}"
        outcomes[column] = outcome
    return Row(what, body, outcomes)


NEW_MEMBER = {"members": ["$new_phone"]}
A_BLOCKER = {"members": ["$blocks_everyone_phone"]}

# --- REST: route x caller -------------------------------------------------------------------

REST = [
    # the session and the account: anyone with a live session, about themselves only
    row("POST /auth/logout", everyone=204),
    row("GET /devices", everyone=200),
    row("DELETE /devices/$tablet", member=204, others=404),  # the member's tablet
    row("POST /ws/ticket", everyone=200),
    row("GET /me", everyone=200),
    row("PATCH /me", {"display_name": "Renamed"}, everyone=200),
    row("GET /me/export", owner="200 listed", admin="200 listed", member="200 listed",
        requested="200 listed", blocked="200 listed", outsiders="200 unlisted"),
    row("POST /me/delete-challenge", everyone=202),
    row("DELETE /me", {"challenge_id": "$member_challenge", "code": "$member_code"},
        member=204, others=401),  # the member's deletion code works for the member alone
    row("GET /blocks", everyone=200),
    row("POST /blocks", {"user_id": "$member"}, member=400, everyone=200),
    row("DELETE /blocks/$blocked", member=204, others=404),  # only the blocker lifts a block
    # starting conversations
    row("POST /conversations", NEW_MEMBER, everyone=201),
    row("POST /conversations", {"members": ["$member_phone"]},
        member=400, blocked=403, everyone=201),
    row("POST /conversations", A_BLOCKER, everyone=403),
    row("GET /conversations", owner="200 listed", admin="200 listed", member="200 listed",
        requested="200 listed", blocked="200 listed", outsiders="200 unlisted"),
    row("GET /conversations/$nowhere/messages", everyone=404),
    # group G
    row("GET /conversations/$group/messages", everyone=200, outsiders=404),
    row("PATCH /conversations/$group", {"title": "renamed"},
        owner=200, admin=200, member=403, requested=403, blocked=403, outsiders=404),
    row("POST /conversations/$group/accept", everyone=200, outsiders=404),
    row("POST /conversations/$group/decline", {}, requested=204, everyone=400, outsiders=404),
    row("POST /conversations/$group/members", NEW_MEMBER,
        owner=200, admin=200, member=403, requested=403, blocked=403, outsiders=404),
    row("POST /conversations/$group/members", A_BLOCKER, everyone=403, outsiders=404),
    row("PATCH /conversations/$group/members/$plain", {"role": "admin"},
        owner=200, admin=403, member=403, requested=403, blocked=403, outsiders=404),
    row("PATCH /conversations/$group/members/$self", {"role": "admin"},
        owner=400, everyone=403, outsiders=404),  # nobody promotes themself
    row("DELETE /conversations/$group/members/$plain",
        owner=204, admin=204, member=403, requested=403, blocked=403, outsiders=404),
    row("DELETE /conversations/$group/members/$owner",
        owner=204, admin=403, member=403, requested=403, blocked=403, outsiders=404),
    row("DELETE /conversations/$group/members/$self", everyone=204, outsiders=404),  # leave
    # direct chat D: the member, and the user the member blocked
    row("GET /conversations/$direct/messages", member=200, blocked=200, others=404),
    row("PATCH /conversations/$direct", {"title": "a title"},
        member=200, blocked=403, others=404),
    row("POST /conversations/$direct/members", NEW_MEMBER,
        member=400, blocked=400, others=404),
]

# Every authenticated route refuses these alike, whoever holds them (the member's, here).
BAD_CREDENTIALS: dict[str, Callable[[Cast], str | None]] = {
    "no token": lambda cast: None,
    "expired token": lambda cast: cast.expired_token(cast.sockets["member"]),
    "forged token": lambda cast: cast.forged_token(cast.sockets["member"]),
    "revoked device": lambda cast: cast.access_token(cast.revoked),
    "another user's ticket": lambda cast: bootstrap.get_tokens().ticket(
        cast.sockets["outsider"].user_id, cast.sockets["outsider"].device_id),
    "a deleted account's token": lambda cast: bootstrap.get_tokens().access_token(
        new_id(), new_id(), 0),  # signed by the server; its user and device are gone
}

# --- the routes that take no session, and the credentials they take instead ------------------


def refresh(api: Api, token: str) -> tuple[int, Any]:
    return api.call("POST", "/auth/refresh", {"refresh_token": token})


def refresh_after_logout(api: Api, cast: Cast) -> tuple[int, Any]:
    session = api.login(cast.people["member"].phone)
    api.call("POST", "/auth/logout", token=session["access_token"])
    return refresh(api, session["refresh_token"])


def refresh_twice(api: Api, cast: Cast) -> tuple[int, Any]:
    session = api.login(cast.people["member"].phone)
    refresh(api, session["refresh_token"])
    return refresh(api, session["refresh_token"])


def verify_with_deletion_code(api: Api, cast: Cast) -> tuple[int, Any]:
    code = deletion_code(cast)
    return api.call("POST", "/auth/verify", {"challenge_id": code["member_challenge"],
                                             "code": code["member_code"], "device_name": "x"})


def delete_me_with_login_code(api: Api, cast: Cast) -> tuple[int, Any]:
    phone = cast.people["member"].phone
    _, challenge = api.call("POST", "/auth/otp", {"phone": phone})
    code = bootstrap.get_db().run_read("t", outbox.sms_for_phone, phone)[0].code
    return api.call("DELETE", "/me", {"challenge_id": challenge["challenge_id"], "code": code},
                    cast.access_token(cast.sockets["member"]))


SESSIONS: dict[str, tuple[Callable[[Api, Cast], tuple[int, Any]], int]] = {
    "GET /health without a token": (lambda api, cast: api.call("GET", "/health"), 200),
    "POST /auth/otp without a token": (lambda api, cast: api.call(
        "POST", "/auth/otp", {"phone": cast.world.new_phone()}), 202),
    "POST /auth/refresh with the device's refresh token": (lambda api, cast: refresh(
        api, api.login(cast.people["member"].phone)["refresh_token"]), 200),
    "POST /auth/refresh with a logged-out device's token": (refresh_after_logout, 401),
    "POST /auth/refresh with a rotated refresh token": (refresh_twice, 401),
    "POST /auth/refresh with an access token": (lambda api, cast: refresh(
        api, cast.access_token(cast.sockets["member"])), 401),
    "POST /auth/verify with a code texted to delete the account": (verify_with_deletion_code,
                                                                   401),
    "DELETE /me with a code texted to log in": (delete_me_with_login_code, 401),
}

# --- WebSocket: `$connect` with each kind of ticket -------------------------------------------


def used_ticket(cast: Cast) -> str:
    """The member's ticket, after the member used it: whoever holds it now gets nothing."""
    ticket = bootstrap.get_tokens().ticket(cast.people["member"].id,
                                           cast.sockets["member"].device_id)
    assert connect("owner-used=", ticket) == 200
    return ticket


CONNECT: dict[str, tuple[Callable[[Cast], str | None], int]] = {
    "a fresh ticket of a live device": (lambda cast: bootstrap.get_tokens().ticket(
        cast.people["member"].id, cast.sockets["member"].device_id), 200),
    "no ticket": (lambda cast: None, 401),
    "an expired ticket": (lambda cast: tokens_at(cast.world.ctx.clock.now_ms() - 120_000)
                          .ticket(cast.people["member"].id, cast.sockets["member"].device_id), 401),
    "another user's ticket, once its owner used it": (used_ticket, 401),
    "a ticket of a revoked device": (lambda cast: bootstrap.get_tokens().ticket(
        cast.people["member"].id, cast.revoked.device_id), 403),
    "a ticket naming another user's device": (lambda cast: bootstrap.get_tokens().ticket(
        cast.people["outsider"].id, cast.sockets["member"].device_id), 403),
    "a ticket signed with another key": (lambda cast: forged_tokens(cast.world.ctx.clock).ticket(
        cast.people["member"].id, cast.sockets["member"].device_id), 401),
    "an access token": (lambda cast: cast.access_token(cast.sockets["member"]), 401),
}

# --- WebSocket: `$default` action x caller ----------------------------------------------------

FRAME_CALLERS = (*CALLERS, *LOGGED_OUT)


def frame_row(action: str, body: dict[str, Any] | None = None, **outcomes: int | str) -> Row:
    return row(action, body, columns=FRAME_CALLERS, **outcomes)


HIDDEN = "sent, hidden from member"  # stored and sent on, but not to the one who blocked them

BATCH = [{"client_msg_id": "$new_id", "body": "one"}, {"client_msg_id": "$new_id2", "body": "two"}]

FRAMES = [
    frame_row("send", {"conversation_id": "$group", "client_msg_id": "$new_id", "body": "hi"},
              everyone="sent", blocked=HIDDEN, outsiders="not_found",
              logged_out="unauthorized"),
    frame_row("send", {"conversation_id": "$group", "messages": BATCH},
              everyone="sent", blocked=HIDDEN, outsiders="not_found",
              logged_out="unauthorized"),
    frame_row("send", {"conversation_id": "$group", "client_msg_id": MEMBER_MESSAGE_ID,
                       "body": MEMBER_BODY},  # the member's own id: keys are per sender
              member="duplicate", everyone="sent", blocked=HIDDEN, outsiders="not_found",
              logged_out="unauthorized"),
    frame_row("send", {"conversation_id": "$group", "client_msg_id": REMOVED_MESSAGE_ID,
                       "body": REMOVED_BODY},  # a retry is answered, never stored again
              removed="duplicate", everyone="sent", blocked=HIDDEN, outsiders="not_found",
              logged_out="unauthorized"),
    frame_row("send", {"conversation_id": "$direct", "client_msg_id": "$new_id", "body": "hi"},
              member="sent", blocked="forbidden", others="not_found",
              logged_out="unauthorized"),
    frame_row("send", {"conversation_id": "$nowhere", "client_msg_id": "$new_id", "body": "x"},
              everyone="not_found", logged_out="unauthorized"),
    frame_row("ack", {"conversation_id": "$group", "seq": 1}, everyone="acked",
              outsiders="not_found", logged_out="unauthorized"),
    frame_row("read", {"conversation_id": "$group", "seq": 1}, everyone="read",
              outsiders="not_found", logged_out="unauthorized"),
    frame_row("sync", {"cursors": {"$group": 0}}, everyone="sync with G",
              outsiders="not_found", logged_out="unauthorized"),
    frame_row("sync", {"cursors": {}}, everyone="sync with G", outsiders="sync without G",
              logged_out="unauthorized"),
    frame_row("ping", everyone="pong", logged_out="unauthorized"),
    frame_row("typing", {"conversation_id": "$group", "active": True}, everyone="passed on",
              requested="not passed on", outsiders="not_found", logged_out="unauthorized"),
    frame_row("typing", {"conversation_id": "$direct", "active": True},
              member="not passed on", blocked="not passed on", others="not_found",
              logged_out="unauthorized"),
    frame_row("unsend", {"conversation_id": "$group", "seq": 2},  # the member's message
              member="expired", everyone="forbidden", outsiders="not_found",
              logged_out="unauthorized"),
    frame_row("unsend", {"conversation_id": "$group", "seq": 1},  # sent before the removal
              everyone="forbidden", outsiders="not_found", logged_out="unauthorized"),
    frame_row("dance", {"conversation_id": "$group"}, everyone="bad_request"),
]


# --- running the cells ----------------------------------------------------------------------


def cells(rows: list[Row]) -> list[Any]:
    return [pytest.param(r, caller, id=f"{r.label} as {caller}")
            for r in rows for caller in r.outcomes]


@dataclass
class Stage:
    client: Client
    cast: Cast
    saved: Snapshot
    pushes: RecordingManagementApi


@pytest.fixture(scope="module")
def stage(mysql_server, mysql_database: str) -> Iterator[Stage]:
    """The app (as conftest's `app_env` and `client` set it up) with the cast, for the whole
    module: a new database connection costs more than a cell, so the cells share one, and the
    cast is put back after each cell instead of being built again."""
    pushes = RecordingManagementApi().start()
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"STAGE": "local", "DATABASE_URL": mysql_server.url(mysql_database),
                            "JWT_SECRET": TEST_JWT_SECRET, "WS_PUBLIC_URL": "ws://127.0.0.1:9/ws",
                            "WS_MANAGEMENT_ENDPOINT": pushes.endpoint,
                            "POWERTOOLS_METRICS_NAMESPACE": "EphemeraTest"}.items():
            env.setenv(name, value)
        bootstrap.reset()
        empty_tables(bootstrap.get_db())
        try:
            with Client(app, stage_name="local") as client:
                cast = build_cast(app_world())
                yield Stage(client, cast, Snapshot.take(bootstrap.get_db()), pushes)
        finally:
            empty_tables(bootstrap.get_db())
            bootstrap.reset()
            pushes.stop()


@pytest.fixture
def cast(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cast]:
    """The cast as built; whatever the cell changes is put back after it."""
    monkeypatch.setattr(typing_service, "_memory", typing_service._Memory())
    stage.pushes.live.update(stage.cast.connection_ids())  # a logout's disconnect takes its own
    stage.cast.world.forget_frames()
    yield stage.cast
    stage.saved.put_back(bootstrap.get_db())


class Values(dict):
    """What a row's $placeholders stand for, for one caller, worked out when first used."""

    def __init__(self, cast: Cast, caller: str) -> None:
        super().__init__()
        self.cast, self.caller = cast, caller
        self.prepared = False  # a value needed a write (a texted code)

    def __missing__(self, key: str) -> str:
        cast, people = self.cast, self.cast.people
        fixed = {"group": cast.group, "direct": cast.direct, "tablet": cast.tablet.device_id,
                 "self": people[self.caller].id if self.caller in people else ""}
        if key in fixed:
            value = fixed[key]
        elif key in ("nowhere", "new_id", "new_id2"):
            value = new_id()
        elif key == "new_phone":
            value = cast.world.new_phone()
        elif key.endswith("_phone"):
            value = people[key.removesuffix("_phone")].phone
        elif key in ("member_challenge", "member_code"):
            self.update(deletion_code(cast))
            self.prepared = True
            value = self[key]
        else:
            value = people[key].id
        self[key] = value
        return value

    def fill(self, template: Any) -> Any:
        return json.loads(Template(json.dumps(template)).substitute(self))


def deletion_code(cast: Cast) -> dict[str, str]:
    """A deletion code texted to the member's phone, read as the member would."""
    member = cast.sockets["member"]
    reply = erasure.request_code(Principal(member.user_id, member.device_id), "127.0.0.1",
                                 bootstrap.get_context())
    sms = cast.world.ctx.db.run_read("t", outbox.sms_for_phone, cast.people["member"].phone)
    return {"member_challenge": reply["challenge_id"], "member_code": sms[0].code}


def rest_call(stage: Stage, r: Row, values: Values, token: str | None) -> tuple[int, Any]:
    method, path = values.fill(r.what).split(" ", 1)
    body = values.fill(r.body) if r.body is not None else None
    return Api(stage.client, bootstrap.get_db()).call(method, path, body, token)


def rest_outcome(r: Row, status: int, reply: Any, cast: Cast) -> str:
    if status >= 400:
        assert reply["error"]["code"] == CODES[status], reply
        return str(status)
    if r.what in ("GET /conversations", "GET /me/export"):
        listed = cast.group in {c["id"] for c in reply["conversations"]}
        return f"{status} {'listed' if listed else 'unlisted'}"
    return str(status)


def state_before(stage: Stage, values: Values) -> tuple[dict[str, int] | None, int]:
    """What a refusal must leave as it is: the cast as saved, unless preparing the call (a
    texted code) changed it; and the number of pushes so far."""
    since = checksums(bootstrap.get_db()) if values.prepared else None
    return since, len(stage.pushes.calls)


def assert_refusal_changed_nothing(stage: Stage, before: tuple[dict[str, int] | None, int]
                                   ) -> None:
    since, pushes = before
    assert stage.saved.refusal_changed(bootstrap.get_db(), since) == set()
    assert stage.pushes.calls[pushes:] == [], "a refused call pushed something"


@pytest.mark.parametrize(("r", "caller"), cells(REST))
def test_each_route_answers_each_caller_as_the_protocol_says(stage, cast, r, caller):
    values = Values(cast, caller)
    values.fill([r.what, r.body])  # prepares what the call needs (a texted code) beforehand
    before = state_before(stage, values)

    status, reply = rest_call(stage, r, values, cast.access_token(cast.sockets[caller]))

    assert rest_outcome(r, status, reply, cast) == str(r.outcomes[caller])
    if status >= 400:
        assert_refusal_changed_nothing(stage, before)


@pytest.mark.parametrize("credential", list(BAD_CREDENTIALS))
@pytest.mark.parametrize("r", [pytest.param(r, id=r.label) for r in REST])
def test_every_route_refuses_a_caller_without_a_live_session(stage, cast, r, credential):
    values = Values(cast, "member")
    values.fill([r.what, r.body])
    before = state_before(stage, values)

    status, reply = rest_call(stage, r, values, BAD_CREDENTIALS[credential](cast))

    assert (status, reply["error"]["code"]) == (401, "unauthorized")
    assert_refusal_changed_nothing(stage, before)


@pytest.mark.parametrize("kind", list(SESSIONS))
def test_the_routes_without_a_session_take_only_their_own_credential(stage, cast, kind):
    call, expected = SESSIONS[kind]

    status, reply = call(Api(stage.client, bootstrap.get_db()), cast)

    assert status == expected, reply
    if status >= 400:
        assert reply["error"]["code"] == CODES[status]


@pytest.mark.parametrize("kind", list(CONNECT))
def test_a_socket_opens_only_with_a_fresh_ticket_of_a_live_device(stage, cast, kind):
    make_ticket, expected = CONNECT[kind]
    ticket = make_ticket(cast)
    stage.pushes.live.update({"matrix-conn=", "owner-used="})
    since = checksums(bootstrap.get_db())

    assert connect("matrix-conn=", ticket) == expected

    stored = [(user, device) for cid, user, device in sockets(bootstrap.get_db())
              if cid == "matrix-conn="]
    if expected == 200:
        assert stored == [(cast.people["member"].id, cast.sockets["member"].device_id)]
    else:
        assert stage.saved.refusal_changed(bootstrap.get_db(), since) == set()


def socket_of(cast: Cast, caller: str) -> Caller:
    if caller == "revoked":
        return cast.revoked
    if caller == "closed":
        return replace(cast.sockets["member"], connection_id="neveropened=")
    return cast.sockets[caller]


def frame_outcome(cast: Cast, r: Row, caller: str, socket: Caller) -> str:
    world = cast.world
    got = world.received(socket)
    errors = [f["code"] for f in got if f["type"] == "error"]
    if errors:
        return errors[-1]
    if r.what == "send":
        return sent_outcome(cast, caller, got)
    if r.what in ("ack", "read"):
        column = "delivered_seq" if r.what == "ack" else "read_seq"
        mine = [p for p in world.rows("participants") if p["user_id"] == socket.user_id
                and p["conversation_id"] == cast.group]
        return {"ack": "acked", "read": "read"}[r.what] if mine[0][column] >= 1 else "unmoved"
    if r.what == "sync":
        listed = {c["conversation_id"] for f in got if f["type"] == "sync"
                  for c in f["conversations"]}
        return "sync with G" if cast.group in listed else "sync without G"
    if r.what == "typing":
        others = [cid for cid, f in world.push.frames
                  if f["type"] == "typing" and cid != socket.connection_id]
        return "passed on" if others else "not passed on"
    return " ".join(f["type"] for f in got) or "no reply"


def sent_outcome(cast: Cast, caller: str, got: list[dict[str, Any]]) -> str:
    sent = [f for f in got if f["type"] == "sent"]
    if sent and all(f["duplicate"] for f in sent):
        return "duplicate"
    member = cast.sockets["member"]
    if caller != "member" and not cast.world.received(member, "message"):
        return "sent, hidden from member"
    return "sent" if sent else "no reply"


@pytest.mark.parametrize(("r", "caller"), cells(FRAMES))
def test_each_frame_answers_each_caller_as_the_protocol_says(stage, cast, r, caller):
    socket = socket_of(cast, caller)
    frame = Values(cast, caller).fill(r.body or {})

    cast.world.frame(socket, r.what, **frame)

    outcome = frame_outcome(cast, r, caller, socket)
    assert outcome == r.outcomes[caller]
    if outcome in CODES.values():
        assert stage.saved.refusal_changed(bootstrap.get_db()) == set()
        assert {cid for cid, _ in cast.world.push.frames} == {socket.connection_id}
