"""Blocks: who will not hear from whom, keyed by an HMAC of the blocked phone."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Transaction, placeholders


@dataclass(frozen=True)
class BlockedUser:
    """A block as its owner lists it: the blocked phone's current user."""

    user_id: str
    phone: str
    display_name: str | None
    blocked_at: int


def insert_block(txn: Transaction, blocker_id: str, blocked_key: str, blocked_user_id: str,
                 now_ms: int) -> None:
    """Block (idempotent: blocking again keeps the first time)."""
    txn.execute("SELECT 1 AS found FROM blocks WHERE blocker_id = %s AND blocked_key = %s",
                (blocker_id, blocked_key))
    if txn.fetchone() is None:
        txn.execute(
            "INSERT INTO blocks (blocker_id, blocked_key, blocked_user_id, created_at)"
            " VALUES (%s, %s, %s, %s)",
            (blocker_id, blocked_key, blocked_user_id, now_ms),
        )


def delete_block(txn: Transaction, blocker_id: str, blocked_user_id: str) -> bool:
    txn.execute("DELETE FROM blocks WHERE blocker_id = %s AND blocked_user_id = %s",
                (blocker_id, blocked_user_id))
    return txn.rowcount > 0


_LISTED = (
    "SELECT u.id AS user_id, u.phone, u.display_name, b.created_at AS blocked_at"
    " FROM blocks b JOIN users u ON u.id = b.blocked_user_id WHERE b.blocker_id = %s"
)


def get_block(txn: Transaction, blocker_id: str, blocked_user_id: str) -> BlockedUser | None:
    txn.execute(_LISTED + " AND b.blocked_user_id = %s", (blocker_id, blocked_user_id))
    row = txn.fetchone()
    return BlockedUser(**row) if row else None


def list_blocks(txn: Transaction, blocker_id: str) -> list[BlockedUser]:
    """The blocks whose phone has a user now, newest first (a block whose user deleted the
    account stays, unlisted, until the phone signs up again)."""
    txn.execute(_LISTED + " ORDER BY b.created_at DESC, u.id", (blocker_id,))
    return [BlockedUser(**row) for row in txn.fetchall()]


def blocked_between(txn: Transaction, user_id: str, others: list[str]) -> set[str]:
    """Those of `others` who blocked `user_id` or whom `user_id` blocked."""
    if not others:
        return set()
    in_list = placeholders(others)
    txn.execute(
        "SELECT blocked_user_id AS other FROM blocks"  # noqa: S608
        f" WHERE blocker_id = %s AND blocked_user_id IN ({in_list})"
        " UNION SELECT blocker_id AS other FROM blocks"
        f" WHERE blocked_user_id = %s AND blocker_id IN ({in_list})",
        [user_id, *others, user_id, *others],
    )
    return {row["other"] for row in txn.fetchall()}


def blockers_of(txn: Transaction, user_id: str, among: list[str]) -> set[str]:
    """Those of `among` who blocked `user_id`."""
    if not among:
        return set()
    in_list = placeholders(among)
    txn.execute(
        "SELECT blocker_id FROM blocks"  # noqa: S608
        f" WHERE blocked_user_id = %s AND blocker_id IN ({in_list})",
        [user_id, *among],
    )
    return {row["blocker_id"] for row in txn.fetchall()}
