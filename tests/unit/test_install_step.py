"""`tools/step.py`: each install step of `make` is one line with its time, and a failing step
shows what its command printed and fails."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEP = ROOT / "tools" / "step.py"


def run_step(label: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(STEP), label, *command], capture_output=True,
                          text=True, timeout=60)


def test_a_step_that_succeeds_is_one_line_with_its_time_and_none_of_its_output():
    result = run_step("web client build", "sh", "-c",
                      "echo 'vite v7 building'; echo 'WARNING: Location is ignored' >&2")

    assert result.returncode == 0
    assert re.fullmatch(r"  web client build \.\.\. \d+\.\d s\n", result.stdout)
    assert result.stderr == ""


def test_a_step_that_fails_shows_its_output_and_fails_with_its_status():
    result = run_step("python packages for running", "sh", "-c",
                      "echo 'Collecting aiohttp'; echo 'ERROR: no matching distribution' >&2; "
                      "exit 3")

    assert result.returncode == 3
    first, *rest = result.stdout.splitlines()
    assert re.fullmatch(r"  python packages for running \.\.\. failed after \d+\.\d s "
                        r"\(exit status 3\); its output:", first)
    assert rest == ["Collecting aiohttp", "ERROR: no matching distribution"]


def test_a_step_whose_command_is_missing_says_so_and_fails():
    result = run_step("web client packages", "no-such-command-for-ephemera")

    assert result.returncode == 127
    assert "no-such-command-for-ephemera: No such file or directory" in result.stdout
