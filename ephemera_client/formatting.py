"""How the `ephemera` command shows things: one readable line per event or row, or one JSON
object per line (`--json`), with names in place of ids wherever the client knows them."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from ephemera_client.events import (
    Connected,
    ConversationChanged,
    Disconnected,
    Event,
    Expired,
    MemberChanged,
    Message,
    Presence,
    Receipt,
    SendFailed,
    Sent,
    ServerError,
    Typing,
    Unread,
)

# The `event` of a `--json` line: the frame's own `type` where the event has a frame.
EVENT_NAMES: dict[type[Event], str] = {
    Message: "message", Sent: "sent", SendFailed: "send_failed", Receipt: "receipt",
    Unread: "unread", Presence: "presence", Expired: "expired", Typing: "typing",
    MemberChanged: "member", ConversationChanged: "conversation", ServerError: "error",
    Connected: "connected", Disconnected: "disconnected",
}
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Directory:
    """Who and what ids stand for, as `GET /conversations` lists them (kept fresh by `tail`)."""

    def __init__(self, own_user_id: str = "") -> None:
        self.own_user_id = own_user_id
        self.conversations: dict[str, dict[str, Any]] = {}
        self.people: dict[str, str] = {}

    def learn(self, conversations: list[dict[str, Any]]) -> None:
        for conversation in conversations:
            self.learn_one(conversation)

    def learn_one(self, conversation: dict[str, Any]) -> None:
        if not conversation.get("id"):
            return
        self.conversations[conversation["id"]] = conversation
        for member in conversation.get("members") or ():
            self.people[member["user_id"]] = person(member)

    def who(self, user_id: str) -> str:
        if user_id == self.own_user_id:
            return "you"
        return self.people.get(user_id, user_id)

    def label(self, conversation_id: str) -> str:
        conversation = self.conversations.get(conversation_id)
        return conversation_label(conversation, self.own_user_id) if conversation \
            else conversation_id


def person(member: dict[str, Any]) -> str:
    return member.get("display_name") or member.get("phone") or member.get("user_id", "?")


def conversation_label(conversation: dict[str, Any], own_user_id: str) -> str:
    """A group's title, else the other members' names."""
    if conversation.get("title"):
        return str(conversation["title"])
    others = [person(m) for m in conversation.get("members") or ()
              if m.get("user_id") != own_user_id]
    return ", ".join(others) or "(just you)"


def clock(ms: int | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime((ms or time.time() * 1000) / 1000))


def duration(seconds: int | None) -> str:
    """86400 -> "1d", 5400 -> "90m": the largest unit that divides it."""
    if not seconds:
        return "-"
    for unit, size in sorted(DURATION_UNITS.items(), key=lambda item: -item[1]):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_duration(text: str) -> int:
    """Seconds from "3600", "90s", "10m", "1h" or "7d" (argparse `type`)."""
    text = text.strip().lower()
    size = DURATION_UNITS.get(text[-1:], 0)
    number = text[:-1] if size else text
    if not number.isdigit():
        raise ValueError(f"not a duration: {text!r} (seconds, or a number with s, m, h or d)")
    return int(number) * (size or 1)


def json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def event_json(event: Event) -> dict[str, Any]:
    """The event's frame as the server sent it, plus its `event` name; the link's own events
    (which have no frame of their own) give their fields."""
    name = EVENT_NAMES.get(type(event), type(event).__name__.lower())
    if isinstance(event, Connected | Disconnected):
        return {"event": name, **{k: v for k, v in asdict(event).items() if k != "raw"}}
    return {"event": name, **event.raw}


def message_line(message: Message | dict[str, Any], names: Directory, *,
                 with_seq: bool = False) -> str:
    fields = message.raw if isinstance(message, Message) else message
    seq = f" [{fields.get('seq')}]" if with_seq else ""
    return (f"{clock(fields.get('created_at'))} #{names.label(fields.get('conversation_id', ''))}"
            f"{seq} {names.who(fields.get('sender_id', ''))}: {fields.get('body', '')}")


def event_line(event: Event, names: Directory) -> str | None:
    """One readable line for an event; None for what a person need not see."""
    if isinstance(event, Message):
        return message_line(event, names)
    text = _event_text(event, names)
    return None if text is None else f"{clock(None)} {text}"


def _event_text(event: Event, names: Directory) -> str | None:
    where = f"#{names.label(getattr(event, 'conversation_id', ''))}"
    if isinstance(event, Receipt):
        mark, verb = ("✓✓", "read by") if event.kind == "read" else ("✓", "delivered to")
        return f"{where} {mark} {verb} {names.who(event.user_id)} up to {event.seq}"
    if isinstance(event, Presence):
        if event.online:
            return f"{names.who(event.user_id)} is online"
        return f"{names.who(event.user_id)} is offline (last seen {clock(event.last_seen_at)})"
    if isinstance(event, Expired):
        count = sum(high - low + 1 for low, high in event.ranges)
        what = "message" if count == 1 else "messages"
        verb = "unsent" if event.reason == "unsent" else "expired"
        return f"{where} {count} {what} {verb}"
    if isinstance(event, Typing):
        return f"{where} {names.who(event.user_id)} " + (
            "is typing" if event.active else "stopped typing")
    if isinstance(event, Unread):
        return f"{where} {event.count} unread"
    if isinstance(event, MemberChanged):
        return f"{where} {_member_text(event, names)}"
    if isinstance(event, ConversationChanged):
        conversation = event.conversation
        return (f"#{names.label(conversation.get('id', ''))} {event.change} by "
                f"{names.who(event.by)} (ttl {duration(conversation.get('ttl_seconds'))})")
    if isinstance(event, Sent):
        return f"{where} sent seq={event.seq}"
    if isinstance(event, SendFailed):
        return f"{where} not sent ({event.code}: {event.message})"
    if isinstance(event, ServerError):
        return f"error {event.code}: {event.message}"
    if isinstance(event, Connected):
        return "connected"
    if isinstance(event, Disconnected):
        return f"disconnected ({event.reason}); reconnecting"
    return None


def _member_text(event: MemberChanged, names: Directory) -> str:
    who, by = names.who(event.user_id), names.who(event.by)
    if event.change == "added":
        return f"{who} was added by {by}"
    if event.change == "removed":
        return f"{who} was removed by {by}"
    if event.change == "left":
        return f"{who} left"
    return f"{who} is now {event.role} (by {by})"


def conversation_row(conversation: dict[str, Any], own_user_id: str) -> str:
    request = "  (request: accept or decline)" if conversation.get("request") else ""
    return (f"{conversation['id']}  {conversation.get('kind', '?'):6}  "
            f"{conversation_label(conversation, own_user_id)}  "
            f"unread {conversation.get('unread_count', 0)}  "
            f"ttl {duration(conversation.get('ttl_seconds'))}{request}")


def member_row(member: dict[str, Any]) -> str:
    name = member.get("display_name") or ""
    online = {True: "online", False: "offline", None: ""}[member.get("online")]
    return f"{member['user_id']}  {member.get('phone', '')}  {member.get('role', '')}  " \
           f"{name}  {online}".rstrip()


def device_row(device: dict[str, Any]) -> str:
    mark = "*" if device.get("current") else " "
    return f"{mark} {device['id']}  {device.get('name', '')}  " \
           f"last used {_date(device.get('last_used_at'))}"


def block_row(block: dict[str, Any]) -> str:
    return f"{block['user_id']}  {block.get('phone') or ''}  {block.get('display_name') or ''}" \
           .rstrip()


def me_lines(me: dict[str, Any], device_id: str, url: str) -> list[str]:
    settings = me.get("settings") or {}
    return [f"phone   {me.get('phone')}",
            f"name    {me.get('display_name') or '-'}",
            f"user    {me.get('id')}",
            f"device  {device_id}",
            f"server  {url}",
            f"message requests {_on(settings.get('message_requests'))}, "
            f"read receipts {_on(settings.get('read_receipts'))}"]


def _on(value: Any) -> str:
    return "on" if value else "off"


def _date(ms: int | None) -> str:
    if not ms:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))
