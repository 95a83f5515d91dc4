"""Database round trips per action through the real `$default` frame handler on MariaDB, with
the deployed limiter checking every policy (each lifted out of reach). A round trip is one
request PyMySQL sends to the server (tests/support/round_trips.py): statements sent together
as one batch count once, and so does a COMMIT. Throwaway database, dropped after."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.quick import sized
from bench.report import emit
from bench.storage import mysql_database
from bench.worlds import migrated_world
from chalicelib.ids import new_id
from tests.integration.messaging_world import World
from tests.support.round_trips import counting_round_trips

REPEATS = sized(50, 5)
GROUP_SIZE = 8  # people in the group, the sender included
BATCH = 10


def per_action(action: Callable[[int], Any], repeats: int = REPEATS) -> float:
    """The round trips of `action(i)` for i in 0..repeats-1, averaged."""
    with counting_round_trips() as counted:
        for i in range(repeats):
            action(i)
    return round(counted.total / repeats, 2)


def batch_send_supported(world: World, caller: Any, conversation_id: str) -> bool:
    """The batch form of `send` (`messages: [...]`) is answered by `sent`s where the server
    has it, and by a `bad_request` error where it does not."""
    world.forget_frames()
    world.frame(caller, "send", conversation_id=conversation_id,
                messages=[{"client_msg_id": new_id(), "body": "probe"}])
    supported = bool(world.received(caller, "sent"))
    world.forget_frames()
    return supported


def measure(world: World) -> list[dict[str, Any]]:
    alice, bob = world.person(), world.person()
    sender, receiver = world.device(alice), world.device(bob)
    chat = world.chat(alice, bob)
    members = [world.person() for _ in range(GROUP_SIZE - 1)]
    for member in members:
        world.device(member)
    group = world.chat(alice, *members)
    world.send(sender, chat)  # first use: connections opened, caches warm
    world.frame(receiver, "ack", conversation_id=chat, seq=1)
    rows = [
        ("send, 1:1", per_action(lambda i: world.send(sender, chat))),
        (f"send, group of {GROUP_SIZE}", per_action(lambda i: world.send(sender, group))),
    ]
    if batch_send_supported(world, sender, chat):
        rows.append((f"send, one batch of {BATCH} messages", per_action(
            lambda i: world.frame(sender, "send", conversation_id=chat, messages=[
                {"client_msg_id": new_id(), "body": f"m{k}"} for k in range(BATCH)]))))
    # Every ack and read below moves its cursor by one, as a live client's do.
    rows += [
        ("ack (cursor moves)", per_action(
            lambda i: world.frame(receiver, "ack", conversation_id=chat, seq=2 + i))),
        ("read (cursor moves)", per_action(
            lambda i: world.frame(receiver, "read", conversation_id=chat, seq=2 + i))),
        ("sync, one conversation 5 behind", per_action(
            lambda i: world.frame(receiver, "sync", cursors={chat: REPEATS - 4}))),
        ("ping", per_action(lambda i: world.frame(receiver, "ping"))),
    ]
    errors = world.received(sender, "error") + world.received(receiver, "error")
    assert not errors, f"an action failed, so its count would mislead: {errors[:3]}"
    return [{"action": action, "round_trips": trips} for action, trips in rows]


def main() -> None:
    with mysql_database() as url:
        world = migrated_world(url, check_limits=True)
        rows = measure(world)
        world.ctx.db.close()
    emit("database round trips per action ($default handler, MariaDB, limiter on)", rows)


if __name__ == "__main__":
    main()
