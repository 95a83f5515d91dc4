"""`deliver` pushes every connection's frames in order, a few connections at a time with their
requests in flight together, and reports the connections gone and the pushes failed."""

from __future__ import annotations

from chalicelib.adapters.push import PushFailed
from chalicelib.services.delivery import PUSH_CONCURRENCY, deliver
from tests.support.fakes import Deferred, RecordingPush


class WatchedPush(RecordingPush):
    """Records how many pushes were in flight (started, not finished) at each start."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: set[str] = set()
        self.started: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def start(self, connection_id: str, frame: dict) -> Deferred:
        self.started.append(connection_id)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        return Deferred(lambda: self._finish(connection_id, frame))

    def _finish(self, connection_id: str, frame: dict) -> bool:
        self.in_flight -= 1
        if connection_id in self.failing and frame["n"] == 0:
            raise PushFailed("POST", connection_id, "HTTP 500")
        return self.send(connection_id, frame)


def test_each_connections_frames_arrive_in_order_a_few_connections_in_flight_at_once():
    push = WatchedPush()
    connections = [f"conn-{i:02}" for i in range(PUSH_CONCURRENCY * 2 + 3)]
    frames = [(cid, {"type": "message", "n": n}) for n in range(3) for cid in connections]

    delivery = deliver(push, frames)

    assert delivery.gone == [] and delivery.failed == []
    for cid in connections:
        assert [f["n"] for c, f in push.frames if c == cid] == [0, 1, 2]
    assert push.most_in_flight == PUSH_CONCURRENCY


def test_a_gone_connection_gets_nothing_more_and_a_failed_push_does_not_stop_the_next():
    push = WatchedPush()
    push.gone.add("gone")
    push.failing.add("flaky")
    frames = [(cid, {"type": "message", "n": n}) for n in range(2)
              for cid in ("gone", "flaky", "fine")]

    delivery = deliver(push, frames)

    assert delivery.gone == ["gone"] and delivery.failed == ["flaky"]
    assert [(c, f["n"]) for c, f in push.frames] == [("fine", 0), ("flaky", 1), ("fine", 1)]
    assert push.started.count("gone") == 1  # its second frame was never sent


def test_a_push_that_cannot_even_start_is_a_failed_push():
    class Unstartable(RecordingPush):
        def start(self, connection_id: str, frame: dict) -> Deferred:
            if connection_id == "broken":
                raise RuntimeError("no endpoint")
            return super().start(connection_id, frame)

    push = Unstartable()

    delivery = deliver(push, [("broken", {"type": "pong"}), ("fine", {"type": "pong"})])

    assert delivery.failed == ["broken"]
    assert push.frames == [("fine", {"type": "pong"})]
