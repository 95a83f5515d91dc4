"""The outbox keeps the order the user wrote (PROTOCOL "Keeping order") against a fake link."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ephemera_client.errors import MessageTooLarge
from ephemera_client.outbox import (
    MAX_BATCH,
    MAX_FRAME_BYTES,
    Outbox,
    new_client_msg_id,
)

CHAT = "01JD3Q6K7W2M8N4P5R6S7T8V9X"
OTHER_CHAT = "01JD3Q6K7W2M8N4P5R6S7T8V9Y"


def wire_size(frame: dict[str, Any]) -> int:
    return len(json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def entries(frame: dict[str, Any]) -> list[tuple[str, str]]:
    """(client_msg_id, body) of a send frame, single or batch form."""
    if "messages" in frame:
        assert "client_msg_id" not in frame and "body" not in frame
        return [(m["client_msg_id"], m["body"]) for m in frame["messages"]]
    return [(frame["client_msg_id"], frame["body"])]


def bodies(frame: dict[str, Any]) -> list[str]:
    return [body for _, body in entries(frame)]


@dataclass
class FakeServer:
    """Stores each frame's messages in order, once per client_msg_id; answers `sent` for each."""

    stored: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)

    def handle(self, frame: dict[str, Any]) -> list[dict[str, Any]]:
        assert frame["action"] == "send"
        assert wire_size(frame) <= MAX_FRAME_BYTES
        assert 1 <= len(entries(frame)) <= MAX_BATCH
        chat = frame["conversation_id"]
        answers = []
        for client_msg_id, body in entries(frame):
            ids = [i for i, _ in self.stored.get(chat, [])]
            duplicate = client_msg_id in ids
            if not duplicate:
                self.stored.setdefault(chat, []).append((client_msg_id, body))
            seq = ids.index(client_msg_id) + 1 if duplicate else len(ids) + 1
            answers.append({"type": "sent", "req": frame["req"], "conversation_id": chat,
                            "client_msg_id": client_msg_id, "message_id": f"m{seq}",
                            "seq": seq, "duplicate": duplicate})
        return answers

    def bodies(self, chat: str = CHAT) -> list[str]:
        return [body for _, body in self.stored.get(chat, [])]


def error(frame: dict[str, Any], code: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "req": frame["req"], "code": code, "message": code, **extra}


def answer_all(outbox: Outbox, server: FakeServer, frames: list[dict[str, Any]]) -> None:
    for frame in frames:
        for sent in server.handle(frame):
            assert outbox.answered(sent) is not None


def drain(outbox: Outbox, server: FakeServer, now: float = 0.0) -> list[dict[str, Any]]:
    """Send and answer until nothing waits; every frame that went on the wire."""
    wire: list[dict[str, Any]] = []
    while len(outbox):
        frames = outbox.frames_due(now)
        assert frames, "something waits but nothing may go"
        wire += frames
        answer_all(outbox, server, frames)
    return wire


def test_one_frame_in_flight_per_conversation() -> None:
    outbox, server = Outbox(), FakeServer()
    outbox.add(CHAT, "one")
    [first] = outbox.frames_due(0.0)
    outbox.add(CHAT, "two")
    assert outbox.frames_due(1.0) == []
    answer_all(outbox, server, [first])
    [second] = outbox.frames_due(2.0)
    assert bodies(second) == ["two"]
    assert "body" in second and "messages" not in second  # one message: the single form


def test_what_piles_up_meanwhile_goes_as_one_batch_in_order() -> None:
    outbox, server = Outbox(), FakeServer()
    outbox.add(CHAT, "one")
    first = outbox.frames_due(0.0)
    for body in ("two", "three", "four"):
        outbox.add(CHAT, body)
        assert outbox.frames_due(0.5) == []
    answer_all(outbox, server, first)
    [batch] = outbox.frames_due(1.0)
    assert [m["body"] for m in batch["messages"]] == ["two", "three", "four"]
    answer_all(outbox, server, [batch])
    assert server.bodies() == ["one", "two", "three", "four"]
    assert len(outbox) == 0


def test_a_backlog_written_offline_goes_out_in_the_order_written() -> None:
    outbox, server = Outbox(), FakeServer()
    written = [f"offline {i}" for i in range(45)]
    for body in written:
        outbox.add(CHAT, body)
    wire = drain(outbox, server)
    assert [len(entries(f)) for f in wire] == [20, 20, 5]
    assert server.bodies() == written


def test_after_a_lost_link_every_unanswered_message_goes_again_with_the_same_id() -> None:
    outbox, server = Outbox(), FakeServer()
    one = outbox.add(CHAT, "one")
    [lost] = outbox.frames_due(0.0)
    server.handle(lost)  # stored, but the answer died with the link
    two = outbox.add(CHAT, "two")
    outbox.link_lost()
    [again] = outbox.frames_due(5.0)
    assert entries(again) == [(one.client_msg_id, "one"), (two.client_msg_id, "two")]
    assert again["req"] != lost["req"]
    answers = server.handle(again)
    assert [a["duplicate"] for a in answers] == [True, False]
    for sent in answers:
        outbox.answered(sent)
    assert server.bodies() == ["one", "two"]
    assert (one.attempts, two.attempts) == (2, 1)
    assert len(outbox) == 0


def test_rate_limited_waits_retry_after_ms_and_a_later_message_never_overtakes() -> None:
    outbox, server = Outbox(), FakeServer()
    outbox.add(CHAT, "one")
    [frame] = outbox.frames_due(0.0)
    assert outbox.refused(error(frame, "rate_limited", retry_after_ms=3_000), 0.0) == []
    outbox.add(CHAT, "two")
    assert outbox.next_deadline() == 3.0
    assert outbox.frames_due(2.9) == []
    [again] = outbox.frames_due(3.0)
    assert bodies(again) == ["one", "two"]
    answer_all(outbox, server, [again])
    assert server.bodies() == ["one", "two"]
    assert outbox.next_deadline() is None


def test_internal_waits_two_seconds_when_told_no_time() -> None:
    outbox = Outbox()
    outbox.add(CHAT, "one")
    [frame] = outbox.frames_due(10.0)
    outbox.refused(error(frame, "internal"), 10.0)
    assert outbox.frames_due(11.9) == []
    assert bodies(outbox.frames_due(12.0)[0]) == ["one"]


def test_a_batch_rate_limited_again_after_waiting_is_halved() -> None:
    outbox, server = Outbox(), FakeServer()
    for i in range(20):
        outbox.add(CHAT, f"m{i}")
    sizes, now = [], 0.0
    while len(outbox) and len(sizes) < 20:
        [frame] = outbox.frames_due(now)
        sizes.append(len(entries(frame)))
        if len(entries(frame)) > 5:  # more than what the limits still allow: refused whole
            outbox.refused(error(frame, "rate_limited", retry_after_ms=1_000), now)
        else:
            answer_all(outbox, server, [frame])
        now += 1.0
    assert sizes == [20, 20, 10, 5, 5, 5, 5]
    assert server.bodies() == [f"m{i}" for i in range(20)]


def test_a_batch_stops_before_a_message_that_must_still_wait() -> None:
    outbox, server = Outbox(), FakeServer()
    outbox.add(CHAT, "one")
    outbox.add(CHAT, "two").retry_at = 5.0  # e.g. an outbox restored with its refusals
    outbox.add(CHAT, "three")
    [frame] = outbox.frames_due(0.0)
    assert bodies(frame) == ["one"]
    answer_all(outbox, server, [frame])
    assert outbox.frames_due(4.0) == []
    assert outbox.next_deadline() == 5.0
    assert bodies(outbox.frames_due(5.0)[0]) == ["two", "three"]


def test_a_batch_refused_as_bad_request_goes_one_by_one() -> None:
    outbox, server = Outbox(), FakeServer()
    outbox.add(CHAT, "one")
    outbox.add(CHAT, "two")
    outbox.add(CHAT, "three")
    [batch] = outbox.frames_due(0.0)
    assert "messages" in batch
    assert outbox.refused(error(batch, "bad_request"), 0.0) == []
    wire = drain(outbox, server, now=0.0)
    assert [bodies(f) for f in wire] == [["one"], ["two"], ["three"]]
    assert all("messages" not in f for f in wire)
    assert server.bodies() == ["one", "two", "three"]


def test_bad_request_on_a_single_message_refuses_it_for_good() -> None:
    outbox = Outbox()
    pending = outbox.add(CHAT, "one")
    [frame] = outbox.frames_due(0.0)
    [refusal] = outbox.refused(error(frame, "bad_request"), 0.0)
    assert (refusal.pending, refusal.code) == (pending, "bad_request")
    assert len(outbox) == 0


def test_forbidden_refuses_the_frames_messages_for_good() -> None:
    outbox, server = Outbox(), FakeServer()
    outbox.add(CHAT, "one")
    outbox.add(CHAT, "two")
    [frame] = outbox.frames_due(0.0)
    outbox.add(CHAT, "three")
    refusals = outbox.refused(error(frame, "forbidden"), 1.0)
    assert [(r.pending.body, r.code, r.message) for r in refusals] == [
        ("one", "forbidden", "forbidden"), ("two", "forbidden", "forbidden")]
    assert [p.body for p in outbox.pending()] == ["three"]
    answer_all(outbox, server, outbox.frames_due(1.0))  # what came after goes now
    assert server.bodies() == ["three"]


def test_unauthorized_goes_again_at_once() -> None:
    outbox = Outbox()
    pending = outbox.add(CHAT, "one")
    [frame] = outbox.frames_due(0.0)
    assert outbox.refused(error(frame, "unauthorized"), 4.0) == []
    outbox.link_lost()
    [again] = outbox.frames_due(4.0)
    assert entries(again) == [(pending.client_msg_id, "one")]


def test_a_batch_never_exceeds_32_kb() -> None:
    outbox, server = Outbox(), FakeServer()
    written = [f"{i}" + "é" * 5_000 for i in range(7)]  # about 10 KB each
    for body in written:
        outbox.add(CHAT, body)
    wire = drain(outbox, server)
    assert [len(entries(f)) for f in wire] == [3, 3, 1]
    assert all(wire_size(f) <= MAX_FRAME_BYTES for f in wire)
    assert server.bodies() == written


def test_a_batch_that_fits_to_the_byte_goes_whole_and_one_byte_more_splits() -> None:
    def batch(second: int) -> dict[str, Any]:
        return {"action": "send", "req": "s1", "conversation_id": CHAT, "messages": [
            {"client_msg_id": "first-message", "body": "x" * 16_384},
            {"client_msg_id": "second-message", "body": "y" * second}]}

    def first_frame(second: int) -> dict[str, Any]:
        outbox = Outbox()
        outbox.add(CHAT, "x" * 16_384, "first-message")
        outbox.add(CHAT, "y" * second, "second-message")
        return outbox.frames_due(0.0)[0]

    fits = MAX_FRAME_BYTES - wire_size(batch(0))
    assert first_frame(fits) == batch(fits) and wire_size(batch(fits)) == MAX_FRAME_BYTES
    assert len(entries(first_frame(fits + 1))) == 1


def test_a_body_over_16_kb_is_refused_before_the_wire() -> None:
    outbox = Outbox()
    outbox.add(CHAT, "a" * 16_384)
    with pytest.raises(MessageTooLarge):
        outbox.add(CHAT, "a" * 16_385)
    with pytest.raises(MessageTooLarge):
        outbox.add(CHAT, "é" * 8_193)  # 8,193 characters, 16,386 bytes
    with pytest.raises(MessageTooLarge):
        outbox.add(CHAT, '"' * 16_384)  # 16 KB of body, 32 KB once JSON escapes it
    assert len(outbox) == 1


def test_a_bad_client_msg_id_is_refused() -> None:
    outbox = Outbox()
    for bad in ("short", "x" * 65, "has space!", "dot.ted-id"):
        with pytest.raises(ValueError):
            outbox.add(CHAT, "hi", bad)
    outbox.add(CHAT, "hi", "A-good_id1")
    with pytest.raises(ValueError):
        outbox.add(CHAT, "again", "A-good_id1")  # already waiting
    assert [p.client_msg_id for p in outbox.pending()] == ["A-good_id1"]


def test_new_client_msg_ids_are_valid_and_unique() -> None:
    ids = {new_client_msg_id() for _ in range(200)}
    assert len(ids) == 200
    outbox = Outbox()
    for client_msg_id in ids:
        outbox.add(CHAT, "hi", client_msg_id)


def test_an_unanswered_frame_is_overdue_after_the_timeout() -> None:
    outbox = Outbox(answer_timeout_s=10.0)
    outbox.add(CHAT, "one")
    outbox.frames_due(100.0)
    assert not outbox.overdue(109.9)
    assert outbox.overdue(110.0)
    outbox.link_lost()
    assert not outbox.overdue(200.0)
    assert bodies(outbox.frames_due(200.0)[0]) == ["one"]


def test_a_partly_answered_batch_stays_in_flight_until_every_message_is_answered() -> None:
    outbox, server = Outbox(), FakeServer()
    outbox.add(CHAT, "one")
    outbox.add(CHAT, "two")
    [batch] = outbox.frames_due(0.0)
    first, second = server.handle(batch)
    outbox.add(CHAT, "three")
    assert outbox.answered(second) is not None  # answers may come out of order
    assert outbox.frames_due(1.0) == []
    assert outbox.answered(first) is not None
    assert bodies(outbox.frames_due(1.0)[0]) == ["three"]


def test_an_answer_already_given_or_not_ours_is_ignored() -> None:
    outbox, server = Outbox(), FakeServer()
    outbox.add(CHAT, "one")
    [sent] = server.handle(outbox.frames_due(0.0)[0])
    assert outbox.answered(sent) is not None
    assert outbox.answered(sent) is None
    assert outbox.answered({**sent, "client_msg_id": "someone-else"}) is None


def test_errors_of_other_frames_are_not_send_errors() -> None:
    outbox = Outbox()
    outbox.add(CHAT, "one")
    [frame] = outbox.frames_due(0.0)
    assert outbox.is_send_error(error(frame, "rate_limited"))
    other = {"type": "error", "req": "sync-1", "code": "forbidden", "message": "no"}
    assert not outbox.is_send_error(other)
    assert outbox.refused(other, 0.0) == []
    assert not outbox.is_send_error({"type": "error", "code": "bad_request", "message": "?"})
    assert [p.body for p in outbox.pending()] == ["one"]
    assert outbox.frames_due(1.0) == []  # still in flight


def test_two_conversations_each_have_their_own_frame_in_flight() -> None:
    outbox, server = Outbox(), FakeServer()
    outbox.add(CHAT, "here")
    outbox.add(OTHER_CHAT, "there")
    outbox.add(CHAT, "here again")
    frames = outbox.frames_due(0.0)
    assert sorted(f["conversation_id"] for f in frames) == [CHAT, OTHER_CHAT]
    assert len({f["req"] for f in frames}) == 2
    [other] = [f for f in frames if f["conversation_id"] == OTHER_CHAT]
    outbox.refused(error(other, "rate_limited", retry_after_ms=60_000), 0.0)
    answer_all(outbox, server, [f for f in frames if f is not other])
    assert outbox.frames_due(1.0) == []  # CHAT's frame carried both; OTHER_CHAT waits
    assert [p.body for p in outbox.pending()] == ["there"]
    assert [p.body for p in outbox.pending(CHAT)] == []
    assert outbox.next_deadline() == 60.0
    answer_all(outbox, server, outbox.frames_due(60.0))
    assert (server.bodies(CHAT), server.bodies(OTHER_CHAT)) == (["here", "here again"], ["there"])


def test_pending_lists_every_conversation_in_the_order_written() -> None:
    outbox = Outbox()
    for chat, body in [(CHAT, "1"), (OTHER_CHAT, "2"), (CHAT, "3"), (OTHER_CHAT, "4")]:
        outbox.add(chat, body)
    assert [p.body for p in outbox.pending()] == ["1", "2", "3", "4"]
    assert [p.body for p in outbox.pending(OTHER_CHAT)] == ["2", "4"]
    assert len(outbox) == 4


# --- property: whatever the link does, each message is stored once, in the order written ------

CHATS = ["chat-a", "chat-b", "chat-c"]

add = st.tuples(st.just("add"), st.sampled_from(CHATS), st.integers(0, 3_000))
send = st.tuples(st.just("send"), st.floats(0, 2))
process = st.tuples(st.just("process"), st.integers(0, 3),
                    st.sampled_from(["ok", "ok", "ok", "rate", "internal"]))
deliver = st.tuples(st.just("deliver"), st.integers(0, 3))
# losses are rarer than traffic, or the link would die before anything interesting happens
operation = st.one_of(add, add, send, send, process, process, deliver, deliver,
                      st.tuples(st.just("drop"), st.integers(0, 3)),
                      st.tuples(st.just("lose_link")),
                      st.tuples(st.just("tick"), st.floats(0, 12)))


@dataclass
class Simulation:
    """A link that reorders frames between concurrent handlers, loses answers and dies; frames
    of a dead link may still be processed by the server later (their answers go nowhere)."""

    outbox: Outbox = field(default_factory=lambda: Outbox(max_batch=4))
    server: FakeServer = field(default_factory=FakeServer)
    written: dict[str, list[str]] = field(default_factory=dict)
    to_server: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    to_client: list[dict[str, Any]] = field(default_factory=list)
    open_frames: dict[str, tuple[str, set[str]]] = field(default_factory=dict)  # this link's
    link: int = 0
    now: float = 0.0
    count: int = 0
    not_before: dict[str, float] = field(default_factory=dict)  # as the server told

    def add(self, chat: str, size: int) -> None:
        self.count += 1
        body = f"{self.count}:" + "é" * size  # large ones make batches split by bytes
        self.outbox.add(chat, body)
        self.written.setdefault(chat, []).append(body)

    def send(self, dt: float) -> None:
        self.now += dt
        for frame in self.outbox.frames_due(self.now):
            chat = frame["conversation_id"]
            assert all(c != chat for c, _ in self.open_frames.values()), "two frames in flight"
            self.open_frames[frame["req"]] = (chat, {i for i, _ in entries(frame)})
            assert all(self.now >= self.not_before.get(i, 0.0) for i, _ in entries(frame))
            self.to_server.append((self.link, frame))

    def process(self, index: int, outcome: str) -> None:
        if not self.to_server:
            return
        link, frame = self.to_server.pop(index % len(self.to_server))
        if outcome == "rate":
            answers = [error(frame, "rate_limited", retry_after_ms=5_000)]
        elif outcome == "internal":
            answers = [error(frame, "internal")]
        else:
            answers = self.server.handle(frame)
        if link == self.link:
            self.to_client += answers

    def deliver(self, index: int) -> None:
        if self.to_client:
            answer = self.to_client.pop(index % len(self.to_client))
            if answer["type"] == "sent":
                self.outbox.answered(answer)
                _, unanswered = self.open_frames[answer["req"]]
                unanswered.discard(answer["client_msg_id"])
                if not unanswered:
                    del self.open_frames[answer["req"]]
            else:
                _, unanswered = self.open_frames.pop(answer["req"])
                wait_s = answer.get("retry_after_ms", 2_000) / 1000
                self.not_before.update((i, self.now + wait_s) for i in unanswered)
                assert self.outbox.is_send_error(answer)
                assert self.outbox.refused(answer, self.now) == []

    def drop(self, index: int) -> None:
        if self.to_client:
            self.to_client.pop(index % len(self.to_client))

    def lose_link(self) -> None:
        self.link += 1
        self.to_client.clear()
        self.open_frames.clear()
        self.outbox.link_lost()

    def tick(self, dt: float) -> None:
        self.now += dt
        if self.outbox.overdue(self.now):
            self.lose_link()

    def settle(self) -> None:
        """A calm link from now on: everything still waiting gets through."""
        self.lose_link()
        for _ in range(1_000):
            if not len(self.outbox) and not self.to_server:
                return
            self.send(1.0)
            while self.to_server:
                self.process(0, "ok")
            while self.to_client:
                self.deliver(0)
        raise AssertionError("the outbox never emptied")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=10, max_size=150))
def test_every_message_is_stored_once_in_the_order_written_whatever_the_link_does(
        operations: list[tuple[Any, ...]]) -> None:
    sim = Simulation()
    for name, *args in operations:
        getattr(sim, name)(*args)
    sim.settle()
    for chat in CHATS:
        assert sim.server.bodies(chat) == sim.written.get(chat, [])
    assert len(sim.outbox) == 0 and sim.outbox.pending() == []
