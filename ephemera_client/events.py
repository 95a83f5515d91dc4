"""What `Client.events()` yields: one typed event per thing that happened, parsed from the
server's frames (PROTOCOL "Server → client"), plus the link's own comings and goings.

Every event keeps the frame it came from in `raw`, so a field the server adds later is never lost
to a caller (the CLI's `--json` prints it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Message(Event):
    """Someone's message, released in `seq` order and exactly once (own messages from another
    device included; this connection's own sends arrive as `Sent`)."""

    conversation_id: str = ""
    message_id: str = ""
    seq: int = 0
    sender_id: str = ""
    sender_device_id: str = ""
    client_msg_id: str = ""
    body: str = ""
    created_at: int = 0
    expires_at: int = 0


@dataclass(frozen=True)
class Sent(Event):
    """The server stored one of this client's messages (or had stored it: `duplicate`)."""

    conversation_id: str = ""
    client_msg_id: str = ""
    message_id: str = ""
    seq: int = 0
    created_at: int = 0
    expires_at: int = 0
    duplicate: bool = False
    expired: bool = False


@dataclass(frozen=True)
class SendFailed(Event):
    """The server refused a message for good (`forbidden`, `not_found`, `too_large`...)."""

    conversation_id: str = ""
    client_msg_id: str = ""
    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class Receipt(Event):
    conversation_id: str = ""
    user_id: str = ""
    kind: str = ""  # "delivered" or "read"
    seq: int = 0


@dataclass(frozen=True)
class Unread(Event):
    conversation_id: str = ""
    count: int = 0


@dataclass(frozen=True)
class Presence(Event):
    user_id: str = ""
    online: bool = False
    last_seen_at: int | None = None


@dataclass(frozen=True)
class Expired(Event):
    """Messages deleted (expired or unsent): drop every copy of the seqs in `ranges`."""

    conversation_id: str = ""
    ranges: tuple[tuple[int, int], ...] = ()
    up_to_seq: int | None = None
    reason: str = "expired"


@dataclass(frozen=True)
class Typing(Event):
    """Someone is typing, or stopped. `at`: when their frame reached the server; one socket's
    frames are handled concurrently, so keep the newest per person (a stop wins a tie)."""

    conversation_id: str = ""
    user_id: str = ""
    active: bool = False
    at: int = 0


@dataclass(frozen=True)
class MemberChanged(Event):
    conversation_id: str = ""
    user_id: str = ""
    change: str = ""  # added, removed, left, role
    role: str | None = None
    by: str = ""


@dataclass(frozen=True)
class ConversationChanged(Event):
    conversation: dict[str, Any] = field(default_factory=dict)
    change: str = ""  # created, updated
    by: str = ""


@dataclass(frozen=True)
class ServerError(Event):
    """An `error` frame that answered none of this client's sends (a refused `read`, say)."""

    code: str = ""
    message: str = ""
    req: str | None = None


@dataclass(frozen=True)
class Connected(Event):
    """A socket is open and the catch-up `sync` after it has finished."""

    server_time: int = 0


@dataclass(frozen=True)
class Disconnected(Event):
    """The socket died or closed; the client reconnects by itself."""

    reason: str = ""


def _fields(frame: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: frame[name] for name in names if name in frame}


def message_of(frame: dict[str, Any]) -> Message:
    return Message(raw=frame, **_fields(frame, "conversation_id", "message_id", "seq", "sender_id",
                                        "sender_device_id", "client_msg_id", "body",
                                        "created_at", "expires_at"))


def sent_of(frame: dict[str, Any]) -> Sent:
    return Sent(raw=frame, **_fields(frame, "conversation_id", "client_msg_id", "message_id",
                                     "seq", "created_at", "expires_at", "duplicate", "expired"))


def expired_of(frame: dict[str, Any]) -> Expired:
    ranges = tuple((int(low), int(high)) for low, high in frame.get("ranges") or ())
    return Expired(raw=frame, conversation_id=frame.get("conversation_id", ""), ranges=ranges,
                   up_to_seq=frame.get("up_to_seq"), reason=frame.get("reason") or "expired")


def event_of(frame: dict[str, Any]) -> Event | None:
    """The event a pushed frame stands for; None for frames the client answers itself
    (`message`, `sent`, `sync`, `pong`, which go through its inbox, outbox and link)."""
    kind = frame.get("type")
    if kind == "receipt":
        return Receipt(raw=frame, **_fields(frame, "conversation_id", "user_id", "kind", "seq"))
    if kind == "unread":
        return Unread(raw=frame, **_fields(frame, "conversation_id", "count"))
    if kind == "presence":
        return Presence(raw=frame, **_fields(frame, "user_id", "online", "last_seen_at"))
    if kind == "expired":
        return expired_of(frame)
    if kind == "typing":
        return Typing(raw=frame, **_fields(frame, "conversation_id", "user_id", "active", "at"))
    if kind == "member":
        return MemberChanged(raw=frame, **_fields(frame, "conversation_id", "user_id", "change",
                                                  "role", "by"))
    if kind == "conversation":
        return ConversationChanged(raw=frame, **_fields(frame, "conversation", "change", "by"))
    if kind == "error":
        return ServerError(raw=frame, **_fields(frame, "code", "message", "req"))
    return None
