"""Pushing: frames to connections, concurrently, and what to do with the ones that are gone.

Each push is a network round trip in AWS, so a fan-out's pushes go out concurrently on a
small pool kept per container, instead of one after another. A connection API Gateway calls
gone is forgotten the way a clean disconnect is (presence announces offline if it was the
user's last), so no dead connection is ever counted.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from chalicelib.adapters.push import Push
from chalicelib.observability import logger
from chalicelib.services import presence
from chalicelib.wire import Frame

if TYPE_CHECKING:
    from chalicelib.services.context import Context

PUSH_CONCURRENCY = 8
_pool = ThreadPoolExecutor(max_workers=PUSH_CONCURRENCY, thread_name_prefix="push")


def push_frames(frames: list[tuple[str, Frame]], ctx: Context) -> None:
    """The one way services push: deliver every frame, then drop the connections that turned
    out to be gone."""
    drop_connections(deliver(ctx.push, frames), ctx)


def drop_connections(connection_ids: list[str], ctx: Context) -> None:
    for connection_id in connection_ids:
        logger.info("dropping a gone connection", extra={"connection_id": connection_id})
        presence.close_connection(connection_id, ctx)


def deliver(push: Push, frames: list[tuple[str, Frame]]) -> list[str]:
    """Send each (connection id, frame); return the ids API Gateway says are gone. Connections
    are served concurrently, each one's frames in the order given (a batch's messages arrive
    in seq order). A push that fails otherwise is logged and skipped: the device catches up
    with `sync`."""
    by_connection: dict[str, list[Frame]] = {}
    for connection_id, frame in frames:
        by_connection.setdefault(connection_id, []).append(frame)
    if len(by_connection) <= 1:
        return [cid for cid, queue in by_connection.items() if not _send_all(push, cid, queue)]
    futures = [(cid, _pool.submit(_send_all, push, cid, queue))
               for cid, queue in by_connection.items()]
    return [cid for cid, future in futures if not future.result()]


def _send_all(push: Push, connection_id: str, queue: list[Frame]) -> bool:
    """One connection's frames in order; False (and the rest dropped) once it is gone."""
    for frame in queue:
        try:
            if not push.send(connection_id, frame):
                return False
        except Exception:  # noqa: BLE001 - one failed push must not stop the others
            logger.warning("push failed", exc_info=True, extra={
                "connection_id": connection_id, "frame_type": frame.get("type")})
    return True  # not known to be gone; keep the connection
