"""The chaos run (bench/chaos.py), small enough for every test run: eight devices of six users
exchange several hundred messages on MariaDB while sockets are cut mid-send, one message goes
twice at once on two sockets of a device, the stack's MySQL connections are killed, pushes fail
(410, timeouts), the stack restarts once and a short-TTL group expires underneath. Afterwards
PROTOCOL's promises hold: exactly once, in seq order, in the order written, stored once, every
message answered, nothing expired readable. `make chaos` runs it for minutes."""

from __future__ import annotations

import json

import pytest

from bench import chaos
from tests.conftest import MYSQL_SERVER_URL

SEED = 1  # at 25 s: 7 cuts, 7 double sends, 5 KILL rounds, 3 + 2 push faults, 1 restart
SECONDS = 25
RATE = 20.0  # messages written a second: ~550 written (and bursts), ~2,000 deliveries


@pytest.fixture
def chaos_report(monkeypatch, capsys) -> tuple[int, dict, list[str]]:
    """One run of the command, as `make chaos` runs it (its own database on the test server)."""
    monkeypatch.setenv("BENCH_MYSQL_URL", MYSQL_SERVER_URL)
    monkeypatch.setenv("LOCAL_WORKERS", "2")  # as every other stack of the tests: starts faster
    exit_code = chaos.main(["--seed", str(SEED), "--seconds", str(SECONDS), "--rate", str(RATE),
                            "--json"])
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return exit_code, document["rows"][0], document["problems"]


def test_under_chaos_every_message_arrives_once_in_order_and_nothing_expired_is_readable(
        chaos_report):
    exit_code, counts, problems = chaos_report

    # Each problem is a broken guarantee in words (`lost ...`, `got ... 2 times`, ...).
    assert problems == [], f"seed {SEED}; the stack's logs: {counts['stack_logs']}"
    assert exit_code == 0
    assert counts["lost"] == 0
    assert counts["sent"] == counts["written"] > 300  # every message kept trying got its sent
    assert counts["delivered_live"] + counts["recovered_by_sync"] > counts["stored"]
    assert counts["short_ttl_sent"] > 0  # and they expired underneath (no rows, no history)
    # The faults were staged, and they bit: clients reconnected and synced what they missed.
    assert counts["restarts"] == 1
    assert counts["sockets_cut"] > 0 and counts["mysql_connections_killed"] > 0
    assert counts["double_sends_answered"] > 0
    assert counts["push_410_faults"] + counts["push_timeout_faults"] > 0
    assert counts["reconnects"] > 0 and counts["recovered_by_sync"] > 0
