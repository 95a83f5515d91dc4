"""Bounded deletes of rows whose time is up: the scheduled cleanup's housekeeping."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Transaction


@dataclass(frozen=True)
class Expiring:
    """A table whose rows end at a time column, and its primary key (for delete by key)."""

    table: str
    key: tuple[str, ...]
    ends_at: str


# A fixed list: table and column names are never taken from input.
EXPIRING = (
    Expiring("otp_challenges", ("id",), "expires_at"),
    Expiring("consumed_tickets", ("jti",), "expires_at"),
    Expiring("refresh_tokens", ("token_hash",), "expires_at"),
    Expiring("idempotency_keys", ("sender_id", "client_msg_id"), "keep_until"),
    Expiring("rate_limit_windows", ("bucket", "window_start"), "expires_at"),
)


def delete_ended(txn: Transaction, spec: Expiring, *, before_ms: int, limit: int) -> int:
    """Delete up to `limit` rows of `spec.table` that ended before `before_ms`, by its time
    index then by primary key (a short transaction, no table scan). Returns how many."""
    key = ", ".join(spec.key)
    txn.execute(
        f"SELECT {key} FROM {spec.table} WHERE {spec.ends_at} < %s"  # noqa: S608 - fixed names
        f" ORDER BY {spec.ends_at} LIMIT %s",
        (before_ms, limit),
    )
    rows = txn.fetchall()
    if not rows:
        return 0
    one = "(" + ", ".join(["%s"] * len(spec.key)) + ")"
    txn.execute(
        f"DELETE FROM {spec.table} WHERE ({key}) IN ({', '.join([one] * len(rows))})"  # noqa: S608
        , [row[column] for row in rows for column in spec.key],
    )
    return len(rows)
