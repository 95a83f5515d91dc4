"""Every benchmark still runs to the end: each bench/*.py with a `main` runs as
`python -m bench.<name>` in quick mode (BENCH_QUICK=1, a few seconds each) and prints its
figures as JSON lines. Found by listing bench/, so a new benchmark cannot rot unseen. No
timing is asserted here; what a benchmark says about behaviour (nothing lost) is."""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MYSQL_SERVER_URL

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
TIMEOUT_S = 180
# Figures that count what went wrong: a benchmark that reports them reports none.
MUST_BE_ZERO = ("lost", "duplicated", "stored_out_of_order", "errors")
# Run by a test of their own, which checks more than "runs to the end" (no quick mode to repeat).
RUN_ELSEWHERE = {"chaos": "tests/e2e/test_chaos.py"}


def benchmark_modules() -> list[str]:
    """bench/*.py that define a top-level `main` (the helpers they share do not)."""
    names = []
    for path in sorted(BENCH.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body) \
                and path.stem not in RUN_ELSEWHERE:
            names.append(path.stem)
    return names


def figures_printed(stdout: str) -> list[dict[str, Any]]:
    """The `{"bench": ..., "rows": [...]}` lines of a benchmark's output."""
    found = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            document = json.loads(line)
            if "bench" in document:
                found.append(document)
    return found


def insane_values(row: dict[str, Any]) -> list[str]:
    """What in a row no benchmark should ever print: negative or non-finite numbers, and
    anything counted among MUST_BE_ZERO."""
    wrong = []
    for key, value in row.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value) or value < 0:
            wrong.append(f"{key}={value}")
        elif key in MUST_BE_ZERO and value != 0:
            wrong.append(f"{key}={value}")
    return wrong


def test_every_benchmark_module_is_found():
    assert {"ladder", "handler_cpu", "round_trips", "send_path"} <= set(benchmark_modules())


@pytest.mark.parametrize("name", benchmark_modules())
def test_benchmark_runs_in_quick_mode(name):
    env = {**os.environ, "BENCH_QUICK": "1", "BENCH_MYSQL_URL": MYSQL_SERVER_URL}
    finished = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    assert finished.returncode == 0, finished.stderr[-4000:]
    printed = figures_printed(finished.stdout)
    assert printed, f"bench.{name} printed no JSON figures:\n{finished.stdout[-2000:]}"
    for document in printed:
        assert isinstance(document["bench"], str) and document["bench"]
        assert document["rows"] and all(isinstance(row, dict) for row in document["rows"])
        for row in document["rows"]:
            assert not insane_values(row), f"{document['bench']}: {row}"
