"""`ephemera smoke` against the local stack: green when the stack works, red when its cleanup
never runs, and a clear exit code when nothing answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.stack import unlimited_rates_env
from tests.e2e.conftest import RunningStack
from tests.support.ports import free_port

EPHEMERA = str(Path(sys.executable).parent / "ephemera")


def smoke(url: str, *flags: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EPHEMERA_CONFIG_DIR": str(tmp_path)}
    return subprocess.run([EPHEMERA, "--url", url, "smoke", "--json", *flags], env=env,
                          capture_output=True, text=True, timeout=120)


def checks_of(output: str) -> dict[str, bool]:
    return {entry["check"]: entry["ok"] for entry in map(json.loads, output.splitlines())}


def test_smoke_passes_every_check_against_a_working_stack(stack, tmp_path):
    finished = smoke(stack.base_url, "--expiry-wait", "20", tmp_path=tmp_path)

    assert finished.returncode == 0, finished.stdout + finished.stderr
    checks = checks_of(finished.stdout)
    assert len(checks) == 11 and all(checks.values()), checks
    assert checks["the cleanup announces it expired"]


def test_smoke_deletes_its_throwaway_accounts_on_the_local_stage(stack, stack_db, tmp_path):
    finished = smoke(stack.base_url, "--expiry-wait", "20", tmp_path=tmp_path)
    assert finished.returncode == 0, finished.stdout + finished.stderr

    def users(txn):
        txn.execute("SELECT COUNT(*) AS n FROM users")
        return txn.fetchone()["n"]

    assert stack_db.run_read("t", users) == 0


def test_smoke_fails_when_the_cleanup_never_comes(fresh_database_url, tmp_path):
    stack = RunningStack({"DATABASE_URL": fresh_database_url, "LOCAL_SCHEDULE": "off",
                          **unlimited_rates_env()})
    try:
        stack.wait_until_ready()
        finished = smoke(stack.base_url, "--expiry-wait", "3", tmp_path=tmp_path)
    finally:
        stack.stop()

    assert finished.returncode == 1, finished.stdout + finished.stderr
    checks = checks_of(finished.stdout)
    assert checks["the cleanup announces it expired"] is False
    # reads filter by expires_at: the message is unreadable even with no cleanup at all
    assert checks["a 10 s message is unreadable once expired"] is True
    assert checks["message a → b"] and checks["message b → a"]


def test_smoke_against_nothing_exits_as_unreachable_at_once(tmp_path):
    started = time.monotonic()
    finished = smoke(f"http://127.0.0.1:{free_port()}", tmp_path=tmp_path)

    assert finished.returncode == 5, finished.stdout + finished.stderr
    assert time.monotonic() - started < 15
