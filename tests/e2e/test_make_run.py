"""The first minutes of `make run`: a taken port is one sentence before anything else and never
a URL; the console carries one line per request or frame, the workers' logs, metrics and warnings
only behind the debug flag; `make run` installs what running needs and `make test` the rest."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, RunningStack, StackClient

TAKEN = re.compile(r"Port (\d+) on 127\.0\.0\.1 is in use: stop what uses it, or run with "
                   r"PORT=(\d+)\.")
MAKE_FAILED = re.compile(r"make(\[\d+\])?: \*\*\* \[.*\] Error \d+")
# What the console of `make run` may show: the stack's own lines, and the banner.
CONSOLE_LINE = re.compile(
    r"\d\d:\d\d:\d\d (starting:|ready in|http|ws|cron) .*"
    r"|  Ephemera is running at http://127\.0\.0\.1:\d+/  \(WebSocket ws://127\.0\.0\.1:\d+/ws\)"
    r"|  Ctrl-C stops it\.|")
# Past 100 values of one metric in one worker, powertools prints them (when metrics are off too).
PINGS = 110


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def assert_refused_in_one_sentence(output: str, port: int) -> None:
    lines = [line for line in output.splitlines() if not MAKE_FAILED.fullmatch(line)]
    assert len(lines) == 1, output
    taken = TAKEN.fullmatch(lines[0])
    assert taken and int(taken[1]) == port and int(taken[2]) != port, output
    assert "running at" not in output and "Traceback" not in output


def test_local_stack_on_a_taken_port_says_so_in_one_sentence_before_migrating(held_port,
                                                                               tmp_path):
    database = tmp_path / "local.db"
    result = subprocess.run(
        [sys.executable, "-m", "local_stack"], cwd=ROOT, capture_output=True, text=True,
        timeout=60, env={**os.environ, "HOST": "127.0.0.1", "PORT": str(held_port),
                         "DATABASE_URL": f"sqlite:///{database}"})

    assert result.returncode != 0
    assert result.stdout == ""
    assert_refused_in_one_sentence(result.stderr, held_port)
    assert not database.exists()  # nothing migrated, no worker started


def test_make_run_on_a_taken_port_says_so_before_installing_anything(held_port, tmp_path):
    fresh_venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "--no-print-directory", "run", f"PORT={held_port}", "HOST=127.0.0.1",
         f"VENV={fresh_venv}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=os.environ)

    assert result.returncode != 0
    assert_refused_in_one_sentence(result.stdout + result.stderr, held_port)
    assert not fresh_venv.exists()


def sign_in_and_chatter(stack: RunningStack) -> None:
    """What makes the workers talk: a sign-in, a re-used refresh token (a warning in the app's
    log), a socket, many frames in one worker, and a frame that is not JSON."""
    client = StackClient(stack)
    session = client.login("+14155550131")
    for _ in range(2):
        client.request("POST", "/auth/refresh", {"refresh_token": session.refresh_token})
    session = client.login("+14155550131", device="laptop")
    socket_ = client.open_socket(session)
    for number in range(PINGS):
        socket_.send(json.dumps({"action": "ping", "req": str(number)}))
        assert json.loads(socket_.recv(timeout=10))["type"] == "pong"
    socket_.send("not json")
    assert json.loads(socket_.recv(timeout=10))["code"] == "bad_request"
    client.close_sockets()


def console_of_a_stack(tmp_path: Path, **env: str) -> str:
    """The whole console output of a stack with `make run`'s defaults (one worker, so that
    every frame lands in it), after `sign_in_and_chatter`."""
    stack = RunningStack({
        "DATABASE_URL": f"sqlite:///{tmp_path / 'local.db'}", "LOCAL_WORKERS": "1",
        # Empty is unset: the stack's own defaults, as under `make run`.
        "POWERTOOLS_LOG_LEVEL": "", "POWERTOOLS_METRICS_DISABLED": "", "PYTHONWARNINGS": "",
        "EPHEMERA_DEBUG": "", **env,
    })
    try:
        stack.wait_until_ready()
        sign_in_and_chatter(stack)
    finally:
        assert stack.stop() == 0, stack.output()
    return stack.output()


def test_the_console_shows_one_line_per_request_or_frame_and_nothing_else(tmp_path):
    console = console_of_a_stack(tmp_path)

    unexpected = [line for line in console.splitlines() if not CONSOLE_LINE.fullmatch(line)]
    assert unexpected == []
    assert '{"_aws"' not in console
    assert "warn" not in console.lower()
    assert len(re.findall(r" ws +\S+ frame ", console)) == PINGS + 1
    assert "http POST /auth/refresh -> 401" in console


def test_the_debug_flag_adds_the_workers_logs_metrics_and_warnings(tmp_path):
    console = console_of_a_stack(tmp_path, EPHEMERA_DEBUG="1")

    assert '{"_aws"' in console
    assert '"level":"WARNING"' in console and "rotated refresh token" in console
    assert len(re.findall(r" ws +\S+ frame ", console)) == PINGS + 1


@pytest.fixture
def fake_venv(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A venv directory (its python only) and the file where a stand-in pip writes what it was
    asked to install."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch(mode=0o755)
    yield venv, tmp_path / "pip.log"


def make_stamp(fake: tuple[Path, Path], stamp: str) -> list[str]:
    """Brings the venv's install stamp up to date; returns what pip was asked to install."""
    venv, pip_log = fake
    pip_log.unlink(missing_ok=True)
    result = subprocess.run(
        ["make", "--no-print-directory", f"VENV={venv}",
         f"PIP_INSTALL=sh -c 'echo \"$$*\" >> {pip_log}' pip", f"{venv}/bin/{stamp}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return pip_log.read_text().splitlines() if pip_log.exists() else []


def test_make_test_after_make_run_installs_the_test_packages(fake_venv):
    assert make_stamp(fake_venv, ".installed-run") == ["-r requirements-run.txt"]
    assert make_stamp(fake_venv, ".installed-test") == ["-r requirements-dev.txt"]


def test_make_run_after_make_test_installs_nothing(fake_venv):
    assert make_stamp(fake_venv, ".installed-test") == ["-r requirements-dev.txt"]
    assert make_stamp(fake_venv, ".installed-run") == []
    assert make_stamp(fake_venv, ".installed-test") == []


def test_running_needs_a_subset_of_what_testing_installs():
    def requirements(name: str) -> list[str]:
        lines = (ROOT / name).read_text().splitlines()
        return [line for line in lines if line and not line.startswith("#")]

    run = requirements("requirements-run.txt")
    assert run[0] == "-r requirements.txt"
    assert requirements("requirements-dev.txt")[0] == "-r requirements-run.txt"
    assert not {"pytest", "moto", "playwright", "cfn-lint"} & {
        re.split(r"[=\[]", line)[0] for line in run}
