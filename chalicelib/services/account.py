"""The caller's own account: profile and privacy settings (`/me`) and blocks (`/blocks`)."""

from __future__ import annotations

import unicodedata
from typing import Any

from chalicelib.crypto import keyed_hash
from chalicelib.errors import InvalidInput, NotFound
from chalicelib.services.context import Context
from chalicelib.storage import blocks, conversations, users
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
