"""Sending login codes by SMS: Amazon SNS when deployed, the outbox table in stage local."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.clock import Clock
from chalicelib.ids import new_id
from chalicelib.storage import outbox
from chalicelib.storage.database import Database


class SmsSender(Protocol):
    def send_code(self, phone: str, code: str, purpose: str = "login") -> None:
        """Deliver `code` to `phone` (E.164), worded for its purpose ("login", "delete")."""


def code_text(code: str, purpose: str = "login") -> str:
    """The text: a code that deletes the account says so, so nobody reads it out believing it
    only logs in (and its owner, who did not ask, knows what someone is trying)."""
    if purpose == "delete":
        return (f"Your Ephemera code to DELETE your account is {code}. It expires in 5 minutes."
                " If you did not ask to delete your account, ignore this and never share it.")
    return f"Your Ephemera code is {code}. It expires in 5 minutes. Never share it."


class SnsSmsSender:
    """Amazon SNS direct-to-phone publishing, as transactional (high-priority) messages."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    def send_code(self, phone: str, code: str, purpose: str = "login") -> None:
        self._sns().publish(
            PhoneNumber=phone,
            Message=code_text(code, purpose),
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

    def send_code(self, phone: str, code: str, purpose: str = "login") -> None:
        sms = outbox.OutboxSms(id=new_id(), phone=phone, code=code, text=code_text(code, purpose),
                               sent_at=self._clock.now_ms())
        self._db.run_transaction("sms.outbox", outbox.insert_sms, sms)
