"""One-time codes (to log in, or to delete the account): stored hashed, attempt-limited,
superseded by a newer request for the same purpose from the same network."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Transaction

# What a code is for. A code only ever does what it was asked for.
LOGIN, DELETE = "login", "delete"

_COLUMNS = ("id, phone, phone_key, network_key, code_hash, attempts_left, created_at,"
            " expires_at, consumed_at, purpose")


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
    purpose: str = LOGIN  # what the code may do: LOGIN or DELETE, checked on every use


def supersede_live_challenges(txn: Transaction, phone_key: str, network_key: str,
                              now_ms: int, purpose: str = LOGIN) -> None:
    """End the open challenges of this phone asked for from this network for this purpose:
    only a network's newest code may log in (or delete). Another network's request leaves them
    alone, or anyone could cancel the code a number's owner is about to type; a login request
    leaves a deletion code alone, and the other way round."""
    txn.execute(
        "UPDATE otp_challenges SET consumed_at = %s WHERE phone_key = %s AND network_key = %s"
        " AND purpose = %s AND consumed_at IS NULL",
        (now_ms, phone_key, network_key, purpose),
    )


def insert_challenge(txn: Transaction, challenge: OtpChallenge) -> None:
    txn.execute(
        f"INSERT INTO otp_challenges ({_COLUMNS})"  # noqa: S608 - a fixed column list
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (challenge.id, challenge.phone, challenge.phone_key, challenge.network_key,
         challenge.code_hash, challenge.attempts_left, challenge.created_at,
         challenge.expires_at, challenge.consumed_at, challenge.purpose),
    )


def spend_attempt(txn: Transaction, challenge_id: str, now_ms: int, *,
                  purpose: str = LOGIN, phone: str | None = None) -> OtpChallenge | None:
    """Take one attempt from an open, unexpired challenge for `purpose` (and, when given, to
    `phone`) and return it; None if there is none such left (used, superseded, expired,
    locked, for another purpose or another phone: those lose no attempt). The UPDATE holds the
    row's lock, so two concurrent guesses cannot both spend the last attempt."""
    only_phone = " AND phone = %s" if phone is not None else ""
    txn.execute(
        "UPDATE otp_challenges SET attempts_left = attempts_left - 1"  # noqa: S608 - fixed
        " WHERE id = %s AND consumed_at IS NULL AND expires_at > %s AND attempts_left > 0"
        " AND purpose = %s" + only_phone,
        (challenge_id, now_ms, purpose) + ((phone,) if phone is not None else ()),
    )
    if txn.rowcount != 1:
        return None
    txn.execute(
        f"SELECT {_COLUMNS} FROM otp_challenges WHERE id = %s",  # noqa: S608 - fixed columns
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
