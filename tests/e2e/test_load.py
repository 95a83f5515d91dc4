"""`ephemera load` against a local stack of its own with the rate limits lifted: a short run
delivers every message once, and its summary adds up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.stack import running_stack
from ephemera_client.load import RoundResult, latency_percentiles
from tests.e2e.conftest import RunningStack

EPHEMERA = str(Path(sys.executable).parent / "ephemera")


@pytest.fixture
def unlimited_stack(fresh_database_url: str) -> Iterator[RunningStack]:
    with running_stack(fresh_database_url) as stack:
        yield stack


def test_load_delivers_every_message_once_and_reports_its_latency(unlimited_stack, tmp_path):
    env = {**os.environ, "EPHEMERA_CONFIG_DIR": str(tmp_path),
           "EPHEMERA_URL": unlimited_stack.base_url}
    finished = subprocess.run(
        [EPHEMERA, "load", "--rate", "20", "--pairs", "2", "--seconds", "3", "--warm-up", "0.5",
         "--json"], capture_output=True, text=True, env=env, timeout=35)

    assert finished.returncode == 0, (finished.stdout, finished.stderr,
                                      unlimited_stack.output()[-3000:])
    summary = json.loads(finished.stdout)
    assert summary["due"] == 70  # 3.5 s at 20 msg/s
    assert summary["sent"] == summary["received"] == summary["due"]
    assert (summary["lost"], summary["duplicated"], summary["rate_limited"]) == (0, 0, 0)
    assert summary["stored_out_of_order"] == 0
    assert summary["samples"] == 60  # the ones due in the measured 3 s
    assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert summary["client_cpu_ms_per_msg"] > 0


def test_percentiles_are_nearest_rank_over_the_sorted_samples():
    samples = [float(n) for n in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose

    assert latency_percentiles(samples) == {"samples": 100, "p50_ms": 51.0, "p95_ms": 96.0,
                                            "p99_ms": 100.0, "max_ms": 100.0}
    assert latency_percentiles([7.25]) == {"samples": 1, "p50_ms": 7.2, "p95_ms": 7.2,
                                           "p99_ms": 7.2, "max_ms": 7.2}
    assert latency_percentiles([])["p99_ms"] is None


def test_summary_counts_cpu_per_message_of_the_window_and_leaves_the_samples_out():
    result = RoundResult(rate=20, pairs=2, seconds=4, warm_up_s=1, due=100, sent=100,
                         received=100, lost=0, duplicated=0, out_of_order=0,
                         stored_out_of_order=0, gap_syncs=0, errors=0, rate_limited=0, frames=90,
                         answered_in_window=80, client_cpu_s=0.2,
                         latencies_ms=[3.0, 1.0, 2.0])

    summary = result.summary()

    assert "latencies_ms" not in summary
    assert (summary["samples"], summary["p50_ms"], summary["max_ms"]) == (3, 2.0, 3.0)
    assert summary["client_cpu_ms_per_msg"] == 2.5
    assert summary["client_cpu_per_s"] == 0.05
