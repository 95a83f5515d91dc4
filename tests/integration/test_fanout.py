"""Big fan-outs off the sender's path (both engines): above the threshold the sender is answered
at once and the other connections' frames are queued; the worker pushes them, drops the gone
ones, and fails a batch it could not finish so that the queue brings it back."""

from __future__ import annotations

from collections import Counter

import pytest

from chalicelib.adapters.push import PushFailed
from chalicelib.services import expiry, fanout, membership
from chalicelib.services.context import Context
from chalicelib.services.delivery import FanoutIncomplete, QueuedBatch, work_fanout
from chalicelib.services.limits import NoLimits
from chalicelib.services.presence import CONNECTING_MS
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush, RecordingQueue

ASYNC_ABOVE = 3


class FlakyPush(RecordingPush):
    """A recording push whose pushes to `failing` connections fail `times` times each."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: dict[str, int] = {}

    def send(self, connection_id: str, frame: dict) -> bool:
        if self.failing.get(connection_id, 0) > 0:
            self.failing[connection_id] -= 1
            raise PushFailed("POST", connection_id, "HTTP 500")
        return super().send(connection_id, frame)


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def world(db, clock, queue) -> World:
    push = FlakyPush()
    ctx = Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS,
                  fanout=queue, fanout_async_above=ASYNC_ABOVE)
    return World(ctx, push)


def big_group(world: World, members: int) -> tuple[object, list, str]:
    """A sender's device and one device of each of `members` others, all in one group."""
    sender, others = world.person(), [world.person() for _ in range(members)]
    chat = world.chat(sender, *others)
    phone = world.device(sender)
    devices = [world.device(other) for other in others]
    world.forget_frames()
    world.ctx.fanout.take()  # the presence of those connecting
    return phone, devices, chat


def run_worker(world: World, queue: RecordingQueue, *, receive_count: int = 1) -> None:
    work_fanout([QueuedBatch(body, receive_count=receive_count) for body in queue.take()],
                world.ctx)


def messages_per_device(world: World, devices: list) -> Counter:
    return Counter(cid for cid, frame in world.push.frames if frame["type"] == "message"
                   and cid in {device.connection_id for device in devices})


def test_above_the_threshold_the_sender_is_answered_at_once_and_the_rest_is_queued(world, queue):
    phone, devices, chat = big_group(world, ASYNC_ABOVE + 1)

    world.send(phone, chat, body="to everyone")

    assert world.last(phone, "sent")["seq"] == 1
    assert messages_per_device(world, devices) == Counter()
    assert queue.bodies

    run_worker(world, queue)

    assert messages_per_device(world, devices) == Counter(
        {device.connection_id: 1 for device in devices})
    assert all(world.last(device, "message")["body"] == "to everyone" for device in devices)


def test_at_or_below_the_threshold_everything_is_pushed_at_once(world, queue):
    phone, devices, chat = big_group(world, ASYNC_ABOVE - 1)  # the sender makes it ASYNC_ABOVE

    world.send(phone, chat, body="small enough")

    assert queue.bodies == []
    assert messages_per_device(world, devices) == Counter(
        {device.connection_id: 1 for device in devices})


def test_a_batch_of_messages_reaches_every_device_in_seq_order(world, queue):
    phone, devices, chat = big_group(world, ASYNC_ABOVE + 2)

    world.frame(phone, "send", conversation_id=chat, req="b", messages=[
        {"client_msg_id": f"batch-message-{n}", "body": f"message {n}"} for n in range(5)])
    run_worker(world, queue)

    for device in devices:
        assert [frame["seq"] for frame in world.received(device, "message")] == [1, 2, 3, 4, 5]


def test_when_the_queue_refuses_everything_is_pushed_in_the_invocation(world, queue):
    phone, devices, chat = big_group(world, ASYNC_ABOVE + 1)
    queue.refusing = True

    world.send(phone, chat, body="pushed from here")

    assert [frame["seq"] for frame in world.received(phone, "sent")] == [1]
    assert messages_per_device(world, devices) == Counter(
        {device.connection_id: 1 for device in devices})


def test_the_worker_drops_connections_that_are_gone(world, queue):
    phone, devices, chat = big_group(world, ASYNC_ABOVE + 1)
    world.send(phone, chat)
    gone = devices[0]
    world.push.gone.add(gone.connection_id)
    world.ctx.clock.advance(ms=CONNECTING_MS + 1)
    connections_before = world.count("connections")

    run_worker(world, queue)

    assert world.count("connections") == connections_before - 1
    assert len(messages_per_device(world, devices)) == len(devices) - 1


def test_a_failed_push_fails_the_batch_and_its_redelivery_loses_nothing(world, queue):
    phone, devices, chat = big_group(world, ASYNC_ABOVE + 1)
    world.send(phone, chat, body="eventually everywhere")
    bodies = list(queue.bodies)
    world.push.failing[devices[0].connection_id] = 1

    with pytest.raises(FanoutIncomplete):
        run_worker(world, queue)
    queue.bodies = bodies  # the queue delivers the batch again
    run_worker(world, queue, receive_count=2)

    delivered = messages_per_device(world, devices)
    assert set(delivered) == {device.connection_id for device in devices}  # nothing lost
    assert delivered[devices[0].connection_id] == 1
    # The others got it twice: harmless, since clients keep one copy per message_id.
    assert all(delivered[device.connection_id] == 2 for device in devices[1:])


def test_a_queue_message_that_is_not_a_fanout_batch_is_dropped_not_retried(world):
    work_fanout([QueuedBatch("not json"), QueuedBatch('{"frames": 1}')], world.ctx)

    assert world.push.frames == []


def test_expired_frames_for_a_big_group_go_through_the_queue(world, queue, clock):
    phone, devices, chat = big_group(world, ASYNC_ABOVE + 1)
    world.send(phone, chat)
    run_worker(world, queue)
    world.forget_frames()
    clock.advance(seconds=3600, ms=1)

    expiry.announce(expiry.purge_expired(world.ctx), world.ctx)

    assert not any(frame["type"] == "expired" for _, frame in world.push.frames)
    run_worker(world, queue)
    assert all(world.last(device, "expired")["conversation_id"] == chat for device in devices)


def test_member_frames_for_a_big_group_go_through_the_queue(world, queue):
    phone, devices, chat = big_group(world, ASYNC_ABOVE + 1)
    newcomer = world.person()

    membership.add_members(phone.user_id, chat, {"members": [newcomer.phone]}, world.ctx)

    assert not any(frame["type"] == "member" for _, frame in world.push.frames)
    run_worker(world, queue)
    assert all(world.last(device, "member")["user_id"] == newcomer.id for device in devices)


def test_a_message_that_expired_while_queued_is_not_pushed(world, queue, clock):
    phone, devices, chat = big_group(world, ASYNC_ABOVE + 1)
    world.send(phone, chat, body="gone by the time the worker runs")
    clock.advance(seconds=3600, ms=1)  # the group's ttl (World.chat: 3600 s)

    run_worker(world, queue)

    assert messages_per_device(world, devices) == Counter()


def test_a_send_to_a_big_group_reaches_the_senders_other_devices_at_once(world, queue):
    sender, others = world.person(), [world.person() for _ in range(ASYNC_ABOVE + 1)]
    chat = world.chat(sender, *others)
    phone, laptop = world.device(sender), world.device(sender)
    devices = [world.device(other) for other in others]
    queue.take()

    world.send(phone, chat, body="mine everywhere")

    assert world.last(laptop, "message")["body"] == "mine everywhere"
    assert messages_per_device(world, devices) == Counter()  # the others: by the worker


def test_the_worker_leaves_out_members_who_blocked_the_sender(world, queue):
    phone, devices, chat = big_group(world, ASYNC_ABOVE + 1)
    blocker = devices[0]
    world.sql("INSERT INTO blocks (blocker_id, blocked_key, blocked_user_id, created_at)"
              " VALUES (%s, %s, %s, 0)", blocker.user_id, "k", phone.user_id)

    world.send(phone, chat, body="not for the one who blocked me")
    run_worker(world, queue)

    assert set(messages_per_device(world, devices)) == {d.connection_id for d in devices[1:]}


def test_a_group_send_bigger_than_one_batch_is_queued_again_as_batches(world, queue,
                                                                       monkeypatch):
    monkeypatch.setattr(fanout, "CONNECTIONS_PER_MESSAGE", 2)
    phone, devices, chat = big_group(world, ASYNC_ABOVE + 2)  # 5 devices: 3 batches
    world.send(phone, chat)

    run_worker(world, queue)  # reads the members' connections, queues their batches
    assert messages_per_device(world, devices) == Counter()
    assert len(queue.bodies) == 3
    run_worker(world, queue)

    assert messages_per_device(world, devices) == Counter(
        {device.connection_id: 1 for device in devices})

