"""The caller's own account: profile and privacy settings (`/me`), blocks (`/blocks`) and the
export of everything stored about them (`/me/export`). Deletion is `services/erasure.py`."""

from __future__ import annotations

import unicodedata
from typing import Any

from chalicelib.crypto import keyed_hash
from chalicelib.errors import InvalidInput, NotFound
from chalicelib.services import conversations as conversation_service
from chalicelib.services.context import Context
from chalicelib.storage import blocks, conversations, erasure, users
from chalicelib.storage.database import Transaction
from chalicelib.storage.users import Profile

DISPLAY_NAME_MAX = 64
SETTINGS = ("message_requests", "read_receipts")
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


def me(user_id: str, ctx: Context) -> dict[str, Any]:
    """`GET /me`."""
    profile = ctx.db.run_read("account.me", users.get_profile, user_id)
    if profile is None:
        raise NotFound("no such user")
    return profile_view(profile)


def update_me(user_id: str, fields: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """`PATCH /me {display_name?, message_requests?, read_receipts?}`: all or nothing."""
    changes: dict[str, object] = {}
    if "display_name" in fields:
        changes["display_name"] = display_name(fields["display_name"])
    for setting in SETTINGS:
        if setting in fields:
            if not isinstance(fields[setting], bool):
                raise InvalidInput(f"{setting} must be true or false")
            changes[setting] = int(fields[setting])
    if not changes:
        raise InvalidInput("send display_name, message_requests and/or read_receipts")
    ctx.db.run_transaction("account.update_me", users.update_profile, user_id, changes)
    return me(user_id, ctx)


def profile_view(profile: Profile) -> dict[str, Any]:
    return {"id": profile.id, "phone": profile.phone, "display_name": profile.display_name,
            "settings": {"message_requests": profile.message_requests,
                         "read_receipts": profile.read_receipts}}


def display_name(raw: object) -> str | None:
    """1 to 64 characters after trimming, or null to remove it. No control characters and no
    bidirectional controls (they would disguise a name); joiners that emoji need are fine."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidInput(f"display_name must be 1 to {DISPLAY_NAME_MAX} characters or null")
    name = raw.strip()
    if not 1 <= len(name) <= DISPLAY_NAME_MAX:
        raise InvalidInput(f"display_name must be 1 to {DISPLAY_NAME_MAX} characters or null")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") or ch in BIDI_CONTROLS
           for ch in name):
        raise InvalidInput("display_name must not contain control characters")
    return name


# --- blocks -------------------------------------------------------------------------------


def list_blocks(user_id: str, ctx: Context) -> dict[str, Any]:
    """`GET /blocks`, newest first."""
    def list_txn(txn: Transaction) -> list[dict[str, Any]]:
        found = blocks.list_blocks(txn, user_id)
        known = conversations.accepted_contacts(txn, user_id, [b.user_id for b in found])
        return [block_view(b, known=b.user_id in known) for b in found]

    return {"blocks": ctx.db.run_read("account.blocks", list_txn)}


def block(user_id: str, fields: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """`POST /blocks {user_id}`: keyed by the blocked phone's HMAC, so it outlives their
    account. Blocking again is harmless."""
    target_id = fields.get("user_id")
    if not isinstance(target_id, str) or not target_id or len(target_id) > 64:
        raise InvalidInput("user_id must be the id of a user")
    if target_id == user_id:
        raise InvalidInput("you cannot block yourself")
    now = ctx.clock.now_ms()

    def block_txn(txn: Transaction) -> dict[str, Any]:
        target = users.get_user(txn, target_id)
        if target is None:
            raise NotFound("no such user")
        blocks.insert_block(txn, user_id, keyed_hash(ctx.keys.phone, target.phone), target.id,
                            now)
        found = blocks.get_block(txn, user_id, target.id)
        assert found is not None
        known = conversations.accepted_contacts(txn, user_id, [target.id])
        return block_view(found, known=target.id in known)

    return ctx.db.run_transaction("account.block", block_txn)


def unblock(user_id: str, target_id: str, ctx: Context) -> None:
    """`DELETE /blocks/{user_id}`; `not_found` if there was no such block."""
    if not ctx.db.run_transaction("account.unblock", blocks.delete_block, user_id, target_id):
        raise NotFound("no such block")


def block_view(found: blocks.BlockedUser, *, known: bool) -> dict[str, Any]:
    """A block as listed; the name only of someone who shares an accepted conversation with
    the caller (a stranger's name stays hidden here as everywhere)."""
    return {"user_id": found.user_id, "phone": found.phone,
            "display_name": found.display_name if known else None,
            "blocked_at": found.blocked_at}


# --- the export ---------------------------------------------------------------------------

# The export stays one bounded reply (Lambda's limit is 6 MB): at most this many conversations,
# this many of the caller's messages per conversation (the newest), and this many bytes of
# message bodies in all. What is left out is named under `truncated`.
EXPORT_CONVERSATIONS_MAX = 1000
EXPORT_MESSAGES_PER_CONVERSATION = 1000
EXPORT_BODY_BYTES = 3_000_000
EXPORT_PAGE = 200


def export(user_id: str, ctx: Context) -> dict[str, Any]:
    """`GET /me/export`: everything stored about the caller, as JSON: profile and settings,
    every device (revoked ones too), conversations with members as `GET /conversations` shows
    them (without `last_message`, which may be someone else's), the caller's own unexpired
    messages, and the blocks they placed. Nothing of what others sent."""
    ctx.limiter.check([("export_per_user", user_id)])
    now = ctx.clock.now_ms()
    data = ctx.db.run_read("account.export", _export_txn, user_id, now)
    views, more = _all_conversations(user_id, ctx)
    data["conversations"] = views
    data["truncated"]["conversations"] = more
    return data


def _export_txn(txn: Transaction, user_id: str, now: int) -> dict[str, Any]:
    found = erasure.account(txn, user_id)
    if found is None:
        raise NotFound("no such user")
    in_ = sorted({m.conversation_id for m in erasure.memberships(txn, user_id)}
                 | set(erasure.conversations_sent_to(txn, user_id)))
    sent, cut, budget = [], [], EXPORT_BODY_BYTES
    for conversation_id in in_:
        mine = erasure.own_messages(txn, conversation_id, user_id, now_ms=now,
                                    limit=EXPORT_MESSAGES_PER_CONVERSATION + 1)
        if len(mine) > EXPORT_MESSAGES_PER_CONVERSATION:
            mine, cut = mine[1:], [*cut, conversation_id]
        kept = []
        for message in reversed(mine):  # newest first, while the budget lasts
            budget -= len(message["body"].encode("utf-8"))
            if budget < 0:
                break
            kept.append(message)
        if len(kept) < len(mine) and conversation_id not in cut:
            cut.append(conversation_id)
        sent += reversed(kept)
    return {
        "exported_at": now,
        "profile": {"id": found.id, "phone": found.phone, "display_name": found.display_name,
                    "created_at": found.created_at, "activated_at": found.activated_at,
                    "last_seen_at": found.last_seen_at},
        "settings": {"message_requests": found.message_requests,
                     "read_receipts": found.read_receipts},
        "devices": erasure.devices(txn, user_id),
        "messages": sent,
        "blocks": erasure.blocks_placed(txn, user_id),
        "limits": {"conversations": EXPORT_CONVERSATIONS_MAX,
                   "messages_per_conversation": EXPORT_MESSAGES_PER_CONVERSATION,
                   "message_body_bytes": EXPORT_BODY_BYTES},
        "truncated": {"conversations": False, "messages_in": cut},
    }


def _all_conversations(user_id: str, ctx: Context) -> tuple[list[dict[str, Any]], bool]:
    """Every page of `GET /conversations`, up to the cap; True when more were left out."""
    views: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": str(EXPORT_PAGE)}
    while True:
        page = conversation_service.list_for(user_id, query, ctx)
        for view in page["conversations"]:
            view.pop("last_message", None)
            views.append(view)
        if page["next_cursor"] is None or len(views) >= EXPORT_CONVERSATIONS_MAX:
            more = page["next_cursor"] is not None or len(views) > EXPORT_CONVERSATIONS_MAX
            return views[:EXPORT_CONVERSATIONS_MAX], more
        query = {"limit": str(EXPORT_PAGE), "cursor": page["next_cursor"]}
