"""How long a cold `import app` takes: what every Lambda cold start pays before the handler."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.quick import sized
from bench.report import emit, latency_summary

RUNS = sized(15, 2)


def time_import(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import app"], env=env, check=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    env = {
        **os.environ, "STAGE": "local", "JWT_SECRET": "bench-" + "x" * 40,
        # As in a Lambda: the configuration is read (and checked) during the cold start.
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
    }
    baseline = [_time_bare_python(env) for _ in range(RUNS)]
    with_app = [time_import(env) for _ in range(RUNS)]
    interpreter = latency_summary(baseline)
    total = latency_summary(with_app)
    emit("cold import of app.py (fresh interpreter per run)", [
        {"what": "python -c pass", **_wall(interpreter)},
        {"what": "python -c 'import app'", **_wall(total)},
        {"what": "import app alone (difference of medians)",
         "n": RUNS, "p50_ms": round(total["p50_ms"] - interpreter["p50_ms"], 3),
         "p99_ms": "", "max_ms": ""},
    ])


def _time_bare_python(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return (time.perf_counter() - started) * 1000


def _wall(summary: dict[str, float]) -> dict[str, float]:
    return {key: summary[key] for key in ("n", "p50_ms", "p99_ms", "max_ms")}


if __name__ == "__main__":
    main()
