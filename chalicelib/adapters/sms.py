"""Sending login codes by SMS: Amazon SNS when deployed, the outbox table in stage local."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.clock import Clock
from chalicelib.ids import new_id
from chalicelib.storage import outbox
from chalicelib.storage.database import Database


class SmsSender(Protocol):
    def send_code(self, phone: str, code: str) -> None:
        """Deliver `code` to `phone` (E.164)."""


def code_text(code: str) -> str:
    return f"Your Ephemera code is {code}. It expires in 5 minutes. Never share it."


class SnsSmsSender:
    """Amazon SNS direct-to-phone publishing, as transactional (high-priority) messages."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    def send_code(self, phone: str, code: str) -> None:
        self._sns().publish(
            PhoneNumber=phone,
            Message=code_text(code),
            MessageAttributes={
                "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
            },
        )

    def _sns(self) -> Any:
        if self._client is None:
            import boto3  # only the functions that send SMS pay for it

            self._client = boto3.client("sns")
        return self._client


class OutboxSmsSender:
    """Stage local only: "sends" by writing the outbox, which `GET /dev/outbox` shows. The code
    is never printed or logged; a person reads it there or on the local login screen."""

    def __init__(self, *, db: Database, clock: Clock, stage: str) -> None:
        if stage != "local":
            raise RuntimeError("the outbox SMS sender exists only in stage local")
        self._db = db
        self._clock = clock

    def send_code(self, phone: str, code: str) -> None:
        sms = outbox.OutboxSms(id=new_id(), phone=phone, code=code, text=code_text(code),
                               sent_at=self._clock.now_ms())
        self._db.run_transaction("sms.outbox", outbox.insert_sms, sms)
