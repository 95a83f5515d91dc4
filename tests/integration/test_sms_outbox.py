"""The console SMS sender keeps codes in the local outbox, and exists only in stage local."""

from __future__ import annotations

import pytest

from chalicelib.adapters.sms import OutboxSmsSender, code_text
from chalicelib.storage import outbox


def test_the_outbox_keeps_what_was_sent_newest_first(db, clock):
    sender = OutboxSmsSender(db=db, clock=clock, stage="local")

    sender.send_code("+14155550101", "111111")
    clock.advance(seconds=1)
    sender.send_code("+14155550101", "222222")
    sender.send_code("+14155550102", "333333")

    sent = db.run_read("t", outbox.sms_for_phone, "+14155550101")
    assert [(s.code, s.text) for s in sent] == [("222222", code_text("222222")),
                                                ("111111", code_text("111111"))]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_outbox_sender_refuses_to_exist_in_a_deployed_stage(sqlite_db, clock, stage):
    with pytest.raises(RuntimeError, match="local"):
        OutboxSmsSender(db=sqlite_db, clock=clock, stage=stage)
