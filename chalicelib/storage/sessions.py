"""Refresh tokens (hashed, rotated, remembered for theft detection) and WebSocket tickets."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Transaction


@dataclass(frozen=True)
class RefreshToken:
    token_hash: str
    device_id: str
    created_at: int
    expires_at: int
    rotated_at: int | None


def insert_refresh_token(txn: Transaction, token: RefreshToken) -> None:
    txn.execute(
        "INSERT INTO refresh_tokens (token_hash, device_id, created_at, expires_at, rotated_at)"
        " VALUES (%s, %s, %s, %s, %s)",
        (token.token_hash, token.device_id, token.created_at, token.expires_at,
         token.rotated_at),
    )


def get_refresh_token(txn: Transaction, token_hash: str) -> RefreshToken | None:
    txn.execute(
        "SELECT token_hash, device_id, created_at, expires_at, rotated_at FROM refresh_tokens"
        " WHERE token_hash = %s",
        (token_hash,),
    )
    row = txn.fetchone()
    return RefreshToken(**row) if row else None


def mark_rotated(txn: Transaction, token_hash: str, now_ms: int) -> bool:
    """Retire a token; False if it was already retired (a concurrent rotation won)."""
    txn.execute(
        "UPDATE refresh_tokens SET rotated_at = %s WHERE token_hash = %s AND rotated_at IS NULL",
        (now_ms, token_hash),
    )
    return txn.rowcount == 1


def consume_ticket(txn: Transaction, jti: str, expires_at: int) -> bool:
    """Record a ticket as used; False if it had been used before."""
    try:
        txn.execute("INSERT INTO consumed_tickets (jti, expires_at) VALUES (%s, %s)",
                    (jti, expires_at))
    except Exception as exc:
        if txn.engine.is_duplicate_key(exc):
            return False
        raise
    return True


def delete_device_tokens(txn: Transaction, device_id: str) -> None:
    txn.execute("DELETE FROM refresh_tokens WHERE device_id = %s", (device_id,))
