"""A fuzzer for `$default` (issue 25): thousands of random and mutated frames go through the
real dispatcher on MariaDB, from a caller with live chats, a message request, a block, and
conversations that are not theirs (another pair's chat, a group they were removed from, a
request they declined, a group deleted when its last member left).

Frames start as valid frames of every action and are mutated: wrong types, huge numbers,
unicode edge cases (lone surrogates, RTL and zero-width characters, NUL, 4-byte emoji), deep
nesting, missing and extra fields, other users' conversation ids, broken JSON, binary-ish and
huge text. For every frame:

- it is answered by one `error` frame with a client error code, or by the protocol's replies
  (never `internal`, never an exception out of the handler), and every frame pushed to anyone
  is a frame that docs/asyncapi.yaml documents, field for field;
- a rejected frame changes nothing in the database (table checksums before and after), and
  neither do the actions that only read (`sync`, `ping`, `typing`);
- a frame naming a conversation the caller is not in is rejected as one naming none at all.

The cases run are counted (FUZZ) and printed at the end for bench/RESULTS.md (about 2,000
frames in 30-60 s here; FUZZ_EXAMPLES=<batches> runs more). The regression tests of what it
found are in tests/integration/test_bad_input_property.py, whose small property test (odd
values of a few fields, on both engines) was its first version.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chalicelib.clock import FixedClock
from chalicelib.services import account, conversations, membership
from chalicelib.services.context import Caller, Context
from chalicelib.services.frames import MAX_FRAME_BYTES
from chalicelib.services.limits import SlidingWindowLimiter, load_policies
from chalicelib.storage.database import Database
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush
from tests.support.frame_schemas import is_documented_client_frame, server_frame_errors

CLIENT_ERRORS = {"bad_request", "not_found", "too_large", "conflict", "forbidden", "gone",
                 "rate_limited"}
# What a frame naming a conversation the caller is not in may be answered: what a frame
# naming no conversation at all gets (`forbidden` or `gone` would tell that it exists).
UNKNOWN_CONVERSATION_ERRORS = CLIENT_ERRORS - {"forbidden", "gone"}
# The replies each action gets on success, to the asking connection.
REPLIES = {"send": {"sent"}, "sync": {"sync"}, "ping": {"pong"}, "unsend": {"expired"},
           "ack": {"unread"}, "read": {"unread"}, "typing": set()}
REPLIES_WITH_REQ = {"sent", "sync", "pong", "expired", "error"}
READ_ONLY_ACTIONS = {"sync", "ping", "typing"}

# Tables a frame legitimately changes whether or not it is accepted, left out of the checksums:
# - rate_limit_windows: every frame, a rejected one too, is counted against its connection's
#   budget first (frames.handle_frame), or a flood of bad frames would cost nothing;
# - connections.last_seen_at: any frame may refresh its connection's sign of life (presence
#   and the idle sweep read it). The rest of `connections` is compared, row by row.
CHANGES_ON_ANY_FRAME = {"rate_limit_windows", "connections"}
CONNECTIONS_BUT_ACTIVITY = ("SELECT id, user_id, device_id, connected_at, silent"
                            " FROM connections ORDER BY id")

# Limits high enough that the fuzzer's own pace is not what it measures; `send_same_body`
# keeps its default, so some sends are denied (and must roll back whole).
GENEROUS_LIMITS = {f"RATE_{name}": "1000000/60" for name in (
    "FRAMES_PER_CONNECTION", "SEND_BURST_PER_USER", "SEND_PER_USER", "SEND_PER_NEW_USER",
    "SEND_PER_CONVERSATION", "CONVERSATIONS_PER_USER", "CONVERSATIONS_PER_NEW_USER",
    "NEW_CONTACTS_PER_USER")}

# Batches of 1 to 10 frames (about 5.5 on average); FUZZ_EXAMPLES sets it for a longer run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))
FUZZ: Counter[str] = Counter()  # cases run, by outcome; printed at the end of the module


# --- the stage --------------------------------------------------------------------------------

# Placeholders the strategies put where a conversation id goes; the stage swaps in real ids.
MINE = ("@direct", "@group", "@request", "@blocked")
NOT_MINE = ("@foreign", "@removed", "@declined", "@deleted", "@unknown")


@dataclass
class Stage:
    """Alice's world: her one live connection sends every fuzzed frame; Bob's device gets
    what she sends."""

    world: World
    alice: Caller
    ids: dict[str, str]
    admin: Any  # a plain connection of its own, for the checksums
    foreign_ids: set[str] = field(default_factory=set)
    last_checksums: dict[str, Any] | None = None  # after the last frame, when it wrote nothing

    def checksums(self) -> dict[str, Any]:
        return table_checksums(self.admin)

    def resolve(self, value: Any) -> Any:
        """The frame with every placeholder replaced by its real id."""
        if isinstance(value, str):
            return self.ids.get(value, value)
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if isinstance(value, dict):
            return {self.resolve(key): self.resolve(item) for key, item in value.items()}
        return value


@pytest.fixture
def stage(mysql_db: Database, mysql_server, mysql_database: str) -> Iterator[Stage]:
    clock = FixedClock()
    push = RecordingPush()
    limiter = SlidingWindowLimiter(db=mysql_db, clock=clock,
                                   policies=load_policies(GENEROUS_LIMITS))
    ctx = Context(db=mysql_db, push=push, clock=clock, limiter=limiter, keys=TEST_KEYS)
    world = World(ctx, push)
    alice, bob, carol, dave, erin = (world.person() for _ in range(5))
    day = 86_400
    ids = {
        "@direct": world.chat(alice, bob, ttl_seconds=day),
        "@group": world.chat(alice, bob, carol, ttl_seconds=day),
        "@request": world.chat(erin, alice, ttl_seconds=day, accepted=False),
        "@blocked": world.chat(alice, dave, ttl_seconds=day),
        "@foreign": world.chat(bob, carol, ttl_seconds=day),
        "@removed": world.chat(bob, alice, carol, ttl_seconds=day),
        "@declined": world.chat(erin, alice, carol, ttl_seconds=day, accepted=False),
        "@deleted": world.chat(alice, bob, carol, ttl_seconds=day),
        "@unknown": "01JZZZZZZZZZZZZZZZZZZZZZZZ",
    }
    caller, bob_phone, erin_phone = world.device(alice), world.device(bob), world.device(erin)
    for name, sender in (("@direct", bob_phone), ("@group", bob_phone), ("@foreign", bob_phone),
                         ("@removed", bob_phone), ("@request", erin_phone),
                         ("@direct", caller), ("@group", caller)):
        world.send(sender, ids[name])
    account.block(dave.id, {"user_id": alice.id}, ctx)
    membership.remove_member(bob.id, ids["@removed"], alice.id, ctx)
    conversations.decline(alice.id, ids["@declined"], {}, ctx)
    for person in (bob, carol, alice):
        membership.remove_member(person.id, ids["@deleted"], person.id, ctx)
    world.forget_frames()
    with mysql_server.connect(mysql_database) as admin:
        yield Stage(world, caller, ids, admin, {ids[name] for name in NOT_MINE})


def table_checksums(admin) -> dict[str, Any]:
    """Every table's checksum (one round trip), and `connections` without its activity."""
    with admin.cursor() as cursor:
        cursor.execute("SHOW TABLES")
        tables = sorted(next(iter(row.values())) for row in cursor.fetchall())
        cursor.execute("CHECKSUM TABLE " + ", ".join(
            f"`{table}`" for table in tables if table not in CHANGES_ON_ANY_FRAME))
        sums: dict[str, Any] = {row["Table"]: row["Checksum"] for row in cursor.fetchall()}
        cursor.execute(CONNECTIONS_BUT_ACTIVITY)
        sums["connections"] = cursor.fetchall()
    return sums


# --- strategies: values ----------------------------------------------------------------------

EDGE_TEXT = [
    "", " ", "\x00", "a\x00b", "\ud800", "\udfff", "x\udc00y", "\ud83d",  # NUL, lone surrogates
    "\u202e", "abc\u202edcba", "\u200f", "\u061c",  # RTL override, RTL mark, Arabic letter mark
    "\u200b", "\u200d", "\u2060", "\ufeff",  # zero-width space and joiner, word joiner, BOM
    "😀", "👩\u200d👩\u200d👧\u200d👦", "\U0010ffff", "\U0001f1fa\U0001f1f8",  # 4-byte, ZWJ family
    "\uffff", "\ufffe", "e\u0301", "\u00ad", "\r\n", "\t", "\x1b[31m", "\x7f",
    "null", "None", "true", "0", "-1", "1e309", "NaN", "[]", "{}", "%s", "%(x)s", "\\",
    "'; DROP TABLE messages; --", "\" OR 1=1 --", "<script>", "${jndi:x}", "..", "/",
]
HUGE_NUMBERS = [2**31, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
                10**100, -(10**100), 10**4000]
edge_text = st.one_of(st.sampled_from(EDGE_TEXT), st.text(max_size=30),
                      st.lists(st.sampled_from(EDGE_TEXT), min_size=2, max_size=4).map("".join))
huge_text = st.one_of(st.integers(60, 70), st.integers(16_000, 17_000),
                      st.integers(30_000, 40_000)).flatmap(
    lambda n: st.sampled_from(["x", "é", "😀", "\"", "\\", "\x00"]).map(lambda c: c * n))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 20), st.sampled_from(HUGE_NUMBERS),
    st.integers(), st.floats(), edge_text, huge_text,
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(edge_text, inner, max_size=4)), max_leaves=8)


@dataclass(frozen=True)
class Nested:
    """A value `depth` arrays or objects deep, written as JSON text (json.dumps itself would
    hit Python's recursion limit first)."""

    depth: int
    objects: bool

    def json(self) -> str:
        opening, closing = ('{"a":', "}") if self.objects else ("[", "]")
        return opening * self.depth + "1" + closing * self.depth


nested = st.builds(Nested, st.sampled_from([2, 50, 500, 999, 1000, 1001, 3000, 10_000]),
                   st.booleans())
odd_values = st.one_of(json_values, nested, st.sampled_from(MINE + NOT_MINE))

# --- strategies: frames ----------------------------------------------------------------------

CLIENT_MSG_IDS = [f"fuzz-msg-{n:04d}" for n in range(6)]  # reused with any body: conflicts
# The fields of valid frames are mostly well formed (the mutations bring the odd values), so
# that the accepted paths run too: sends, duplicates, conflicts, receipts, unsends.
conversation_ids = st.sampled_from(MINE * 3 + NOT_MINE)
fresh_client_msg_ids = st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True)
# Just inside and just outside the pattern (^[A-Za-z0-9_-]{8,64}$, where `$` ends the text).
BOUNDARY_CLIENT_MSG_IDS = ["a" * 8, "Z" * 64, "a" * 7, "a" * 65, "abcdefgh\n", "a" * 64 + "\n",
                           "abcd efgh", "abcdéfgh", "abcdefgh\x00", "--------", "________"]
client_msg_ids = st.one_of(fresh_client_msg_ids, fresh_client_msg_ids,
                           st.sampled_from(CLIENT_MSG_IDS + BOUNDARY_CLIENT_MSG_IDS))
# The same send again and again: stored once, then answered `duplicate` (or `expired` once
# an unsend took it back).
RETRIED_SENDS = [{"action": "send", "conversation_id": conversation, "body": f"again {n}",
                  "client_msg_id": f"fuzz-retry-{conversation[1:]}-{n}"}
                 for conversation in ("@direct", "@group") for n in range(3)]
bodies = st.one_of(st.sampled_from(["hello", "hi there", "x" * 40]), edge_text.filter(bool),
                   st.text(min_size=1, max_size=200))
seqs = st.integers(0, 12)
reqs = st.one_of(st.integers(0, 10**6), st.text(max_size=8),
                 st.sampled_from(["r" * 64, "r" * 65, "\ud800", [1], {"a": 1}, 1.5, True]))


def frame_of(action: str, **fields: st.SearchStrategy) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"action": st.just(action), **fields},
                                 optional={"req": reqs})


VALID_FRAMES = st.one_of(
    frame_of("send", conversation_id=conversation_ids, client_msg_id=client_msg_ids,
             body=bodies),
    st.sampled_from(RETRIED_SENDS),
    frame_of("send", conversation_id=conversation_ids, messages=st.lists(
        st.fixed_dictionaries({"client_msg_id": client_msg_ids, "body": bodies}),
        min_size=1, max_size=4)),
    frame_of("ack", conversation_id=conversation_ids, seq=seqs),
    frame_of("read", conversation_id=conversation_ids, seq=seqs),
    frame_of("unsend", conversation_id=conversation_ids, seq=seqs),
    frame_of("sync", cursors=st.dictionaries(conversation_ids, seqs, max_size=3)),
    frame_of("sync", cursors=st.just({}), limit=st.integers(-1, 600)),
    frame_of("ping"),
    frame_of("typing", conversation_id=conversation_ids, active=st.booleans()),
)
FIELDS = ["action", "req", "conversation_id", "client_msg_id", "body", "messages", "seq",
          "cursors", "limit", "active"]
field_mutations = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(FIELDS), odd_values),
    st.tuples(st.just("set"), st.sampled_from(["action"]),
              st.sampled_from(["SEND", "send ", "Ping", "", "__class__", "get", "nope"])),
    st.tuples(st.just("drop"), st.sampled_from(FIELDS), st.none()),
    st.tuples(st.just("extra"), edge_text, odd_values),
    st.tuples(st.just("inner"), st.sampled_from(["client_msg_id", "body", "extra"]),
              odd_values),
    st.tuples(st.just("trailing"), st.sampled_from(["client_msg_id", "conversation_id", "action"]),
              st.sampled_from(["\n", "\x00", " ", "\u200b"])),
)
text_mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1), st.none()),
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(
        ['"', "{", "}", ",", ":", "\\", "\x00", "\ud800", "😀", " ", "]", "\\u", "\\ud800"])),
    st.tuples(st.just("delete"), st.floats(0, 1), st.none()),
    st.tuples(st.just("duplicate_key"), st.just(0.0), st.sampled_from(
        ['"action":"ping"', '"action":"nope"', '"req":[]', '"seq":"1"'])),
)


@dataclass(frozen=True)
class Case:
    """A frame to send: a valid one, its mutations, and what was done to its text."""

    frame: Any
    mutations: tuple = ()
    text_mutations: tuple = ()
    garbage: str | None = None  # raw text sent as it is, instead of the frame


def mutate(frame: dict[str, Any], mutations: tuple) -> dict[str, Any]:
    frame = dict(frame)
    for operation, name, value in mutations:
        if operation == "set":
            frame[name] = value
        elif operation == "drop":
            frame.pop(name, None)
        elif operation == "extra":
            frame.setdefault(name, value)
        elif operation == "inner" and isinstance(frame.get("messages"), list):
            first = frame["messages"][0]
            frame["messages"] = [{**first, name: value}, *frame["messages"][1:]] if isinstance(
                first, dict) else frame["messages"]
        elif operation == "trailing" and isinstance(frame.get(name), str):
            frame[name] = frame[name] + value
    return frame


garbage = st.one_of(
    st.text(max_size=100),
    st.binary(max_size=100).map(lambda raw: raw.decode("latin-1")),
    st.binary(max_size=60).map(lambda raw: raw.decode("utf-8", errors="replace")),
    json_values.map(json.dumps),  # JSON, but not an object (or an object without an action)
    st.sampled_from(["", " ", "None", "null", "{}", "[]", "{", '{"action":', "\x00",
                     '{"action":"send"}garbage', "\ufeff{\"action\":\"ping\"}",
                     '{"action":"ping"} {"action":"ping"}', "NaN", "Infinity", '"ping"']),
    nested.map(lambda value: value.json()),
    st.integers(32_000, 40_000).map(lambda n: json.dumps({"action": "ping", "pad": "p" * n})),
)
cases = st.one_of(
    st.builds(Case, VALID_FRAMES),
    st.builds(Case, VALID_FRAMES),
    st.builds(Case, VALID_FRAMES, st.lists(field_mutations, min_size=1, max_size=3).map(tuple)),
    st.builds(Case, VALID_FRAMES, st.lists(field_mutations, max_size=2).map(tuple),
              st.lists(text_mutations, min_size=1, max_size=2).map(tuple)),
    st.builds(Case, st.none(), garbage=garbage),
)

# --- from a case to the socket's text -------------------------------------------------------

NESTED_MARK = "\ue000nested:{}\ue000"  # a private-use placeholder for a Nested value's text
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def to_wire(text: str) -> str:
    """What a socket can carry: UTF-8 text, so a lone surrogate can only arrive as a JSON
    escape (inside a string it is one; elsewhere it is plain text)."""
    return LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def serialise(frame: Any) -> str:
    nested_values: list[Nested] = []

    def mark(value: Any) -> Any:
        if isinstance(value, Nested):
            nested_values.append(value)
            return NESTED_MARK.format(len(nested_values) - 1)
        if isinstance(value, list):
            return [mark(item) for item in value]
        if isinstance(value, dict):
            return {key: mark(item) for key, item in value.items()}
        return value

    text = json.dumps(mark(frame), ensure_ascii=False)
    for index, value in enumerate(nested_values):
        text = text.replace(json.dumps(NESTED_MARK.format(index), ensure_ascii=False),
                            value.json())
    return text


def mutate_text(text: str, mutations: tuple) -> str:
    for operation, where, extra in mutations:
        at = int(where * len(text))
        if operation == "truncate":
            text = text[:at]
        elif operation == "insert":
            text = text[:at] + extra + text[at:]
        elif operation == "delete":
            text = text[:at] + text[at + 1:]
        elif operation == "duplicate_key" and text.startswith("{"):
            text = "{" + extra + "," + text[1:]
    return text


def raw_text(case: Case, stage: Stage) -> str:
    if case.garbage is not None:
        return to_wire(case.garbage)
    frame = stage.resolve(mutate(case.frame, case.mutations))
    return to_wire(mutate_text(serialise(frame), case.text_mutations))


# --- what the server received, as the test reads it -------------------------------------------


def parsed(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def valid_req(raw: str, frame: Any) -> Any:
    """The `req` a reply must echo: the frame's own when the frame is an object of at most
    32 KB (a bigger one is not read) whose `req` is a well-formed one (a string of at most 64
    characters or a whole number), else none."""
    if len(raw.encode()) > MAX_FRAME_BYTES:
        return None
    req = frame.get("req") if isinstance(frame, dict) else None
    if isinstance(req, bool) or not isinstance(req, (str, int)):
        return None
    if isinstance(req, str) and (len(req) > 64 or LONE_SURROGATE.search(req)):
        return None
    return req


def names_foreign_conversation(frame: Any, stage: Stage) -> bool:
    """Whether a frame, if it were well formed otherwise, addresses a conversation that is
    not the caller's (another pair's, one they left or declined, one that is gone)."""
    if not isinstance(frame, dict):
        return False
    if frame.get("action") == "sync":
        cursors = frame.get("cursors")
        return isinstance(cursors, dict) and bool(set(cursors) & stage.foreign_ids)
    named = frame.get("conversation_id")
    return (frame.get("action") in ("send", "ack", "read", "unsend", "typing")
            and isinstance(named, str) and named in stage.foreign_ids)


# --- the property -------------------------------------------------------------------------------


def run_case(stage: Stage, case: Case) -> None:
    """Send one case's frame as Alice and judge everything it caused."""
    raw = raw_text(case, stage)
    frame = parsed(raw)
    before = stage.last_checksums or stage.checksums()
    stage.last_checksums = None  # known again only once this frame is judged to write nothing
    pushed_before = len(stage.world.push.frames)

    stage.world.raw(stage.alice, raw)  # an exception out of the handler fails the test

    pushed = stage.world.push.frames[pushed_before:]
    mine = [reply for cid, reply in pushed if cid == stage.alice.connection_id]
    check_replies_are_of_the_protocol(raw, frame, [reply for _, reply in pushed], mine)
    if any(reply["type"] == "error" for reply in mine):
        check_rejected(stage, raw, frame, mine, before)
    else:
        check_answered(stage, raw, frame, mine, before)
    FUZZ["frames"] += 1


def check_replies_are_of_the_protocol(raw: str, frame: Any, pushed: list[dict[str, Any]],
                                      mine: list[dict[str, Any]]) -> None:
    for reply in pushed:  # to anyone: Bob's `message`, receipts, `unread`...
        assert server_frame_errors(reply) == [], (raw[:300], reply)
        json.dumps(reply, ensure_ascii=False).encode()  # as the push adapter sends it: UTF-8
    for reply in mine:
        if reply["type"] in REPLIES_WITH_REQ:
            assert reply.get("req") == valid_req(raw, frame), (raw[:300], reply)


def check_rejected(stage: Stage, raw: str, frame: Any, mine: list[dict[str, Any]],
                   before: dict[str, Any]) -> None:
    """One `error` with a client code, nothing else, and the database as it was."""
    assert len(mine) == 1, (raw[:300], mine)
    code = mine[0]["code"]
    assert code in CLIENT_ERRORS, (raw[:300], mine)
    if names_foreign_conversation(frame, stage):
        assert code in UNKNOWN_CONVERSATION_ERRORS, (raw[:300], mine)
    if code == "bad_request" and len(raw.encode()) <= MAX_FRAME_BYTES:
        assert not is_documented_client_frame(frame), f"the document takes it: {raw[:300]}"
    stage.last_checksums = stage.checksums()
    assert stage.last_checksums == before, f"a rejected frame changed the database: {raw[:300]}"
    FUZZ[f"rejected {code}"] += 1


def check_answered(stage: Stage, raw: str, frame: Any, mine: list[dict[str, Any]],
                   before: dict[str, Any]) -> None:
    """Only an action's own replies; one that only reads wrote nothing."""
    action = frame.get("action") if isinstance(frame, dict) else None
    assert isinstance(action, str) and action in REPLIES, (raw[:300], mine)
    assert {reply["type"] for reply in mine} <= REPLIES[action], (raw[:300], mine)
    if action in ("send", "sync", "ping", "unsend"):
        assert mine, f"{action} was not answered: {raw[:300]}"
    assert not names_foreign_conversation(frame, stage), (raw[:300], mine)
    if action in READ_ONLY_ACTIONS:
        stage.last_checksums = stage.checksums()
        assert stage.last_checksums == before, f"{action} changed the database: {raw[:300]}"
    FUZZ[f"answered {action}"] += 1


def test_every_fuzzed_frame_is_answered_by_the_protocol_and_a_rejected_one_changes_nothing(
        stage):
    clock = stage.world.ctx.clock
    assert isinstance(clock, FixedClock)

    # No shrinking: each frame is judged on its own and a failure shows its text, while
    # shrinking a batch against the database can take minutes.
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(cases, min_size=1, max_size=10))
    def fuzz(batch: list[Case]) -> None:
        clock.advance(seconds=2)  # the typing budget and the rate windows move on
        for case in batch:
            run_case(stage, case)

    fuzz()
    assert FUZZ["frames"] >= 1000, FUZZ
    assert FUZZ["answered send"] and FUZZ["rejected bad_request"], FUZZ


def test_the_checksums_see_a_changed_row_but_not_a_frames_count_or_touch(stage):
    """The instrument itself: a property that compares checksums proves nothing unless
    they move when a row changes (and stay when only the counters do)."""
    before = stage.checksums()
    stage.world.ctx.clock.advance(seconds=60)  # the next frame refreshes the connection
    stage.world.raw(stage.alice, '{"action":"ping"}')  # counted, touched: nothing else
    assert stage.checksums() == before
    assert [row["last_seen_at"] for row in stage.world.rows("connections")
            if row["id"] == stage.alice.connection_id] == [stage.world.ctx.clock.now_ms()]

    stage.world.sql("UPDATE conversations SET title = 'x' WHERE id = %s", stage.ids["@group"])
    assert stage.checksums() != before


@pytest.fixture(scope="module", autouse=True)
def report_fuzz_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    """The number of cases run, on the terminal (pytest's capture aside), for
    bench/RESULTS.md ("the number of fuzz cases run")."""
    yield
    if not FUZZ["frames"]:
        return
    outcomes = ", ".join(f"{name} {n}" for name, n in sorted(FUZZ.items()) if name != "frames")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nframe fuzzer: {FUZZ['frames']} frames ({outcomes})")
