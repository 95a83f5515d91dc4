"""`ephemera smoke` against the local stack: green when the stack works, red when its cleanup
never runs, and a clear exit code when nothing answers or no code can be had."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from chalicelib.config import parse_database_url
from chalicelib.phones import normalize_phone
from chalicelib.storage.database import Database
from chalicelib.storage.engines import create_engine
from ephemera_client import exits, smoke
from tests.e2e.conftest import RunningStack
from tests.support.ports import free_port

EPHEMERA = str(Path(sys.executable).parent / "ephemera")
EXPIRY_CHECK = "10 s TTL message: announced expired"
UNREADABLE_CHECK = "10 s TTL message: unreadable after expiry"


def run_smoke_command(url: str, *flags: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EPHEMERA_CONFIG_DIR": str(tmp_path)}
    env.pop("EPHEMERA_URL", None)
    # The form the README and DEPLOY.md give operators: the flag after the command's name.
    return subprocess.run([EPHEMERA, "smoke", "--url", url, *flags], env=env,
                          capture_output=True, text=True, timeout=90)


def checks_of(json_lines: str) -> dict[str, dict]:
    return {entry["check"]: entry for entry in map(json.loads, json_lines.splitlines())}


@pytest.fixture
def own_stack(fresh_database_url) -> Iterator[tuple[RunningStack, Database]]:
    """A stack of its own whose cleanup runs every second (the session's stack closes idle
    sockets after 3 s, which would make the smoke's clients reconnect while they wait)."""
    stack = RunningStack({"DATABASE_URL": fresh_database_url, "EXPIRY_INTERVAL_S": "1"})
    db = Database(create_engine(parse_database_url(fresh_database_url)))
    try:
        stack.wait_until_ready()
        yield stack, db
    finally:
        stack.stop()
        db.close()


def count_users(txn) -> int:
    txn.execute("SELECT COUNT(*) AS n FROM users")
    return txn.fetchone()["n"]


def test_smoke_passes_every_check_and_leaves_no_account_behind(own_stack, tmp_path):
    stack, db = own_stack

    finished = run_smoke_command(stack.base_url, "--expiry-wait", "10", tmp_path=tmp_path)

    assert finished.returncode == exits.OK, finished.stdout + finished.stderr
    lines = finished.stdout.splitlines()
    check_lines, summary = lines[:-1], lines[-1]
    assert len(check_lines) == 12 and all(line.startswith("✓ ") for line in check_lines), lines
    assert any(line.startswith(f"✓ {EXPIRY_CHECK}") for line in check_lines)
    assert all(" ms" in line for line in check_lines)  # every check timed
    assert summary == f"12 passed, 0 failed against {stack.base_url}"
    assert db.run_read("t", count_users) == 0  # both throwaway accounts deleted


def test_smoke_fails_when_the_cleanup_never_comes(fresh_database_url, tmp_path):
    stack = RunningStack({"DATABASE_URL": fresh_database_url, "LOCAL_SCHEDULE": "off"})
    try:
        stack.wait_until_ready()
        finished = run_smoke_command(stack.base_url, "--json", "--expiry-wait", "3",
                                     tmp_path=tmp_path)
    finally:
        stack.stop()

    assert finished.returncode == exits.FAILED, finished.stdout + finished.stderr
    checks = checks_of(finished.stdout)
    assert checks[EXPIRY_CHECK]["ok"] is False
    assert "expired" in checks[EXPIRY_CHECK]["detail"]
    # reads filter by expires_at: the message is unreadable even with no cleanup at all
    assert checks[UNREADABLE_CHECK]["ok"] is True
    assert [name for name, check in checks.items() if not check["ok"]] == [EXPIRY_CHECK]


def test_smoke_against_nothing_exits_as_unreachable_at_once(tmp_path):
    started = time.monotonic()

    finished = run_smoke_command(f"http://127.0.0.1:{free_port()}", "--json", tmp_path=tmp_path)

    assert finished.returncode == exits.UNREACHABLE, finished.stdout + finished.stderr
    assert time.monotonic() - started < 15
    assert checks_of(finished.stdout)["sign in a and b"]["ok"] is False


def test_smoke_on_a_stage_without_an_outbox_asks_for_phones_instead_of_inventing_them():
    async def scenario() -> int:
        app = web.Application()  # a deployed stage, as far as /dev/outbox goes: 404
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            return await smoke.run_smoke(argparse.Namespace(
                url=f"http://127.0.0.1:{port}", phone_a=None, phone_b=None, code_command=None,
                no_prompt=True, expiry_wait=1.0, json=True))
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()) == exits.USAGE


def test_throwaway_phones_are_fictional_numbers_the_server_accepts():
    for area_code in smoke.AREA_CODES:
        for line in ("0100", "0199"):
            phone = f"+1{area_code}555{line}"
            assert normalize_phone(phone) == phone
    phone = smoke._throwaway_phone()
    assert phone[5:10] == "55501" and normalize_phone(phone) == phone
