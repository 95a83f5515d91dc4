"""The local stage's SMS outbox: what the console sender "sent", for people and tests."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Transaction


@dataclass(frozen=True)
class OutboxSms:
    id: str
    phone: str
    code: str
    text: str
    sent_at: int


def insert_sms(txn: Transaction, sms: OutboxSms) -> None:
    txn.execute(
        "INSERT INTO sms_outbox (id, phone, code, text, sent_at) VALUES (%s, %s, %s, %s, %s)",
        (sms.id, sms.phone, sms.code, sms.text, sms.sent_at),
    )


def sms_for_phone(txn: Transaction, phone: str, limit: int = 20) -> list[OutboxSms]:
    """Newest first."""
    txn.execute(
        "SELECT id, phone, code, text, sent_at FROM sms_outbox WHERE phone = %s"
        " ORDER BY sent_at DESC, id DESC LIMIT %s",
        (phone, limit),
    )
    return [OutboxSms(**row) for row in txn.fetchall()]
