"""One-time login codes: stored hashed, attempt-limited, superseded by a newer request from the
same network."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Transaction


@dataclass(frozen=True)
class OtpChallenge:
    id: str
    phone: str
    phone_key: str
    network_key: str | None  # HMAC of the requester's network; None on rows from before it
    code_hash: str
    attempts_left: int
    created_at: int
    expires_at: int
    consumed_at: int | None


def supersede_live_challenges(txn: Transaction, phone_key: str, network_key: str,
                              now_ms: int) -> None:
    """End the open challenges of this phone asked for from this network: only a network's
    newest code may log in. Another network's request leaves them alone, or anyone could
    cancel the code a number's owner is about to type."""
    txn.execute(
        "UPDATE otp_challenges SET consumed_at = %s"
        " WHERE phone_key = %s AND network_key = %s AND consumed_at IS NULL",
        (now_ms, phone_key, network_key),
    )


def insert_challenge(txn: Transaction, challenge: OtpChallenge) -> None:
    txn.execute(
        "INSERT INTO otp_challenges (id, phone, phone_key, network_key, code_hash, attempts_left,"
        " created_at, expires_at, consumed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (challenge.id, challenge.phone, challenge.phone_key, challenge.network_key,
         challenge.code_hash, challenge.attempts_left, challenge.created_at,
         challenge.expires_at, challenge.consumed_at),
    )


def spend_attempt(txn: Transaction, challenge_id: str, now_ms: int) -> OtpChallenge | None:
    """Take one attempt from an open, unexpired challenge and return it; None if there is
    none left (used, superseded, expired or locked). The UPDATE holds the row's lock, so two
    concurrent guesses cannot both spend the last attempt."""
    txn.execute(
        "UPDATE otp_challenges SET attempts_left = attempts_left - 1"
        " WHERE id = %s AND consumed_at IS NULL AND expires_at > %s AND attempts_left > 0",
        (challenge_id, now_ms),
    )
    if txn.rowcount != 1:
        return None
    txn.execute(
        "SELECT id, phone, phone_key, network_key, code_hash, attempts_left, created_at,"
        " expires_at, consumed_at FROM otp_challenges WHERE id = %s",
        (challenge_id,),
    )
    row = txn.fetchone()
    return OtpChallenge(**row) if row else None


def consume_challenge(txn: Transaction, challenge_id: str, now_ms: int) -> bool:
    txn.execute(
        "UPDATE otp_challenges SET consumed_at = %s WHERE id = %s AND consumed_at IS NULL",
        (now_ms, challenge_id),
    )
    return txn.rowcount == 1
