"""Users and their devices."""

from __future__ import annotations

from dataclasses import dataclass, replace

from chalicelib.storage.database import Transaction, placeholders


@dataclass(frozen=True)
class User:
    id: str
    phone: str
    created_at: int
    activated_at: int | None  # None while pending: added to a chat, never logged in
    last_seen_at: int | None


@dataclass(frozen=True)
class Device:
    id: str
    user_id: str
    name: str
    token_version: int
    created_at: int
    last_used_at: int
    revoked_at: int | None


def insert_user(txn: Transaction, user: User) -> None:
    txn.execute(
        "INSERT INTO users (id, phone, created_at, activated_at, last_seen_at)"
        " VALUES (%s, %s, %s, %s, %s)",
        (user.id, user.phone, user.created_at, user.activated_at, user.last_seen_at),
    )


def get_user(txn: Transaction, user_id: str) -> User | None:
    txn.execute(
        "SELECT id, phone, created_at, activated_at, last_seen_at FROM users WHERE id = %s",
        (user_id,),
    )
    row = txn.fetchone()
    return User(**row) if row else None


def get_user_by_phone(txn: Transaction, phone: str) -> User | None:
    txn.execute(
        "SELECT id, phone, created_at, activated_at, last_seen_at FROM users WHERE phone = %s",
        (phone,),
    )
    row = txn.fetchone()
    return User(**row) if row else None


def insert_device(txn: Transaction, device: Device) -> None:
    txn.execute(
        "INSERT INTO devices (id, user_id, name, token_version, created_at, last_used_at,"
        " revoked_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (device.id, device.user_id, device.name, device.token_version, device.created_at,
         device.last_used_at, device.revoked_at),
    )


def get_device(txn: Transaction, device_id: str) -> Device | None:
    txn.execute(
        "SELECT id, user_id, name, token_version, created_at, last_used_at, revoked_at"
        " FROM devices WHERE id = %s",
        (device_id,),
    )
    row = txn.fetchone()
    return Device(**row) if row else None



def get_or_create_user(txn: Transaction, *, new_id: str, phone: str, phone_key: str,
                       now_ms: int, activate: bool) -> User:
    """The user with `phone`, created (pending, or active if `activate`) when there is none.
    A new user inherits the blocks placed on the phone (`phone_key`) before: blocks survive
    the blocked one deleting the account and signing up again.

    A concurrent creator may win the unique phone key: then its row is read instead.
    """
    existing = get_user_by_phone(txn, phone)
    if existing is None:
        user = User(id=new_id, phone=phone, created_at=now_ms,
                    activated_at=now_ms if activate else None, last_seen_at=None)
        try:
            insert_user(txn, user)
            txn.execute("UPDATE blocks SET blocked_user_id = %s WHERE blocked_key = %s",
                        (user.id, phone_key))
            return user
        except Exception as exc:
            if not txn.engine.is_duplicate_key(exc):
                raise
        existing = get_user_by_phone(txn, phone)
        assert existing is not None  # the row that beat us to the key
    if activate and existing.activated_at is None:
        txn.execute("UPDATE users SET activated_at = %s WHERE id = %s AND activated_at IS NULL",
                    (now_ms, existing.id))
        existing = replace(existing, activated_at=now_ms)
    return existing


def list_live_devices(txn: Transaction, user_id: str) -> list[Device]:
    txn.execute(
        "SELECT id, user_id, name, token_version, created_at, last_used_at, revoked_at"
        " FROM devices WHERE user_id = %s AND revoked_at IS NULL ORDER BY created_at, id",
        (user_id,),
    )
    return [Device(**row) for row in txn.fetchall()]


def revoke_device(txn: Transaction, device_id: str, now_ms: int) -> bool:
    """Revoke now: bumping token_version voids every access token already issued."""
    txn.execute(
        "UPDATE devices SET revoked_at = %s, token_version = token_version + 1"
        " WHERE id = %s AND revoked_at IS NULL",
        (now_ms, device_id),
    )
    return txn.rowcount == 1


def touch_device(txn: Transaction, device_id: str, now_ms: int) -> None:
    txn.execute("UPDATE devices SET last_used_at = %s WHERE id = %s", (now_ms, device_id))


def lock_user(txn: Transaction, user_id: str, seen_at_ms: int) -> None:
    """Take the user's row lock and note a sign of life at `seen_at_ms`: connects, disconnects
    and presence sweeps of one user run one at a time, so exactly one of them sees the user
    come online or go offline."""
    note_last_seen(txn, user_id, seen_at_ms)


def note_last_seen(txn: Transaction, user_id: str, seen_at_ms: int) -> None:
    """Move the user's last sign of life forward to `seen_at_ms`, never back: a sweep that
    finds a connection silent notes its last activity, not the sweep's own time, and an
    earlier activity noted late cannot hide a later one."""
    txn.execute(
        "UPDATE users SET last_seen_at = CASE WHEN last_seen_at IS NULL OR last_seen_at < %s"
        " THEN %s ELSE last_seen_at END WHERE id = %s",
        (seen_at_ms, seen_at_ms, user_id),
    )


@dataclass(frozen=True)
class Profile:
    """What a user says about themself, and their privacy settings."""

    id: str
    phone: str
    display_name: str | None
    message_requests: bool
    read_receipts: bool


def get_profile(txn: Transaction, user_id: str) -> Profile | None:
    txn.execute(
        "SELECT id, phone, display_name, message_requests, read_receipts FROM users"
        " WHERE id = %s",
        (user_id,),
    )
    row = txn.fetchone()
    if row is None:
        return None
    return Profile(row["id"], row["phone"], row["display_name"],
                   bool(row["message_requests"]), bool(row["read_receipts"]))


# The columns a profile update may set; names are never taken from input.
PROFILE_COLUMNS = ("display_name", "message_requests", "read_receipts")


def update_profile(txn: Transaction, user_id: str, changes: dict[str, object]) -> None:
    """Set the given profile columns (keys from PROFILE_COLUMNS)."""
    for column, value in changes.items():
        if column not in PROFILE_COLUMNS:
            raise ValueError(f"not a profile column: {column}")
        txn.execute(f"UPDATE users SET {column} = %s WHERE id = %s",  # noqa: S608 - fixed names
                    (value, user_id))


def accepting_everyone(txn: Transaction, user_ids: list[str]) -> set[str]:
    """Those of `user_ids` who turned message requests off (they accept everyone)."""
    if not user_ids:
        return set()
    in_list = placeholders(user_ids)
    txn.execute(f"SELECT id FROM users WHERE message_requests = 0 AND id IN ({in_list})",  # noqa: S608
                user_ids)
    return {row["id"] for row in txn.fetchall()}


def users_by_phone(txn: Transaction, phones: list[str], *,
                   lock: bool = False) -> dict[str, str]:
    """phone -> user id, for those of `phones` that have a user (pending or active). `lock`
    holds their rows until the transaction ends: an account deletion (which takes the user's
    row first) then cannot commit between this read and the rows that will name the ids, and
    a read that waited for one finds the phone without a user."""
    if not phones:
        return {}
    in_list = placeholders(phones)
    locking = txn.engine.for_update() if lock else ""
    txn.execute(f"SELECT id, phone FROM users WHERE phone IN ({in_list}){locking}",  # noqa: S608
                phones)
    return {row["phone"]: row["id"] for row in txn.fetchall()}


def lock_existing_user(txn: Transaction, user_id: str) -> bool:
    """Hold the user's row until the transaction ends; False if it no longer exists (the
    account was deleted)."""
    txn.execute(f"SELECT id FROM users WHERE id = %s{txn.engine.for_update()}",  # noqa: S608
                (user_id,))
    return txn.fetchone() is not None
