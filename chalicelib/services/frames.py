"""The `$default` route: parse a client frame, dispatch on `action`, answer failures with an
`error` frame that echoes `req`. A bad frame changes nothing and the socket stays open.

Actions: `send`, `ack`, `read`, `sync`, `ping`, `unsend` (the sender takes a message back:
`not_found`, `bad_request`, `gone`, `forbidden`) and `typing` (never stored: `not_found`,
`bad_request`, `rate_limited` from an in-memory budget). Every other frame is counted against
the connection's budget in the database (`rate_limited` when over)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.errors import EphemeraError, InvalidInput, TooLarge
from chalicelib.inputs import require_utf8
from chalicelib.observability import internal_failure, metrics, tag
from chalicelib.services import messaging, presence, reading, unsending
from chalicelib.services import typing as typing_service
from chalicelib.services.context import Caller, Context, caller_of, count_frame
from chalicelib.services.delivery import deliver, push_frames
from chalicelib.wire import error_frame, pong_frame

MAX_FRAME_BYTES = 32 * 1024
REQ_MAX_LENGTH = 64

Action = Callable[[Caller, dict[str, Any], Context], None]
# An action that reads its caller in its own transaction, with its first statements (one
# round trip fewer), and returns who it found.
CursorAction = Callable[[str, dict[str, Any], Context], Caller]


def ping(caller: Caller, frame: dict[str, Any], ctx: Context) -> None:
    """Heartbeat: the connection's activity was refreshed on the way in; answer `pong`."""
    push_frames([(caller.connection_id, pong_frame(ctx.clock.now_ms(), frame.get("req")))], ctx)


ACTIONS: dict[str, Action | CursorAction] = {
    "send": messaging.send,
    "ack": messaging.ack,
    "read": messaging.read,
    "sync": reading.sync,
    "ping": ping,
    "unsend": unsending.unsend,
    "typing": typing_service.typing,
}
CURSOR_ACTIONS = frozenset({messaging.ack, messaging.read})


def handle_frame(raw: str | None, connection_id: str, ctx: Context, *,
                 received_at: int | None = None) -> None:
    """Every frame, bad ones included, passes the connection's frame limit before it costs
    more than that. `received_at`: when the frame reached API Gateway (ms), if known."""
    req = None
    try:
        try:
            frame = parse_frame(raw)
            req = frame.get("req")
            require_utf8(frame)
            asked = frame.get("action")  # any JSON value: a list or an object is no key
            action = ACTIONS.get(asked) if isinstance(asked, str) else None
            if action is None:
                raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}")
        except EphemeraError:
            count_frame(connection_id, ctx)
            raise
        tag(action=asked)
        caller = _act(action, frame, connection_id, ctx, received_at=received_at)
        if caller is not None and caller.was_silent:  # it shows life again: others learn now,
            presence.revive(caller.user_id, ctx)  # not at the next sweep
    except EphemeraError as error:
        deliver(ctx.push, [(connection_id, error_frame(error, req))])
    except Exception:  # noqa: BLE001 - see internal_failure
        # The invocation itself succeeds (the caller got its error frame), so the middleware
        # sees no 5xx: the frame counts its own server error, for the alarm on their rate.
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
        deliver(ctx.push, [(connection_id, error_frame(internal_failure("frame failed"), req))])


def _act(action: Action | CursorAction, frame: dict[str, Any], connection_id: str,
         ctx: Context, *, received_at: int | None) -> Caller | None:
    """Run the action; the caller it acted for (None for `typing`, which revives nothing)."""
    if action in CURSOR_ACTIONS:
        return action(connection_id, frame, ctx)  # type: ignore[arg-type,return-value]
    if action is typing_service.typing:  # writes nothing, not even the frame's count:
        typing_service.spend_budget(connection_id, ctx)  # an in-memory budget instead
        typing_service.typing(caller_of(connection_id, ctx), frame, ctx,  # a read
                              received_at=received_at)
        return None
    named = frame.get("conversation_id")
    sending = action is messaging.send and isinstance(named, str)
    caller = caller_of(connection_id, ctx, force_touch=frame["action"] == "ping",
                       sending_to=named if sending else None,
                       client_msg_ids=messaging.client_msg_ids_of(frame) if sending else ())
    if action is not messaging.send:  # a send counts its frame (and refreshes its activity)
        count_frame(connection_id, ctx, touch=caller.touch_due)  # in its own transaction
    action(caller, frame, ctx)  # type: ignore[arg-type]
    return caller


def parse_frame(raw: str | None) -> dict[str, Any]:
    """The frame as a JSON object with a well-formed `req` (or none), else `bad_request`.
    (A missing body reaches `$default` as nothing at all, or as Chalice's string "None".)"""
    if raw is None or raw == "None" or not raw.strip():
        raise InvalidInput("send a JSON object with an action")
    if len(raw.encode("utf-8")) > MAX_FRAME_BYTES:
        raise TooLarge("frames are limited to 32 KB")
    try:
        frame = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput("the frame is not valid JSON") from exc
    except RecursionError as exc:  # arrays or objects nested past the parser's depth
        raise InvalidInput("the frame is nested too deeply") from exc
    if not isinstance(frame, dict):
        raise InvalidInput("the frame must be a JSON object")
    req = frame.get("req")
    if req is not None and not (
            (isinstance(req, str) and len(req) <= REQ_MAX_LENGTH)
            or (isinstance(req, int) and not isinstance(req, bool))):
        raise InvalidInput(f"req must be a string of at most {REQ_MAX_LENGTH} characters or a "
                           "number")
    require_utf8(req)  # echoed in the reply: a lone surrogate could not be pushed as UTF-8
    return frame
