"""Users and their devices."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Transaction


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
    refresh_hash: str | None
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
        "INSERT INTO devices (id, user_id, name, token_version, refresh_hash, created_at,"
        " last_used_at, revoked_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (device.id, device.user_id, device.name, device.token_version, device.refresh_hash,
         device.created_at, device.last_used_at, device.revoked_at),
    )


def get_device(txn: Transaction, device_id: str) -> Device | None:
    txn.execute(
        "SELECT id, user_id, name, token_version, refresh_hash, created_at, last_used_at,"
        " revoked_at FROM devices WHERE id = %s",
        (device_id,),
    )
    row = txn.fetchone()
    return Device(**row) if row else None

