"""Print benchmark figures twice: a table for people and one JSON line for tools."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from typing import Any


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max of latencies in milliseconds, and the rate they add up to."""
    ordered = sorted(samples_ms)
    total_s = sum(ordered) / 1000
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "max_ms": round(ordered[-1], 3),
        "per_s": round(len(ordered) / total_s, 1) if total_s else 0.0,
    }


def emit(name: str, rows: list[dict[str, Any]]) -> None:
    """A fixed-width table of `rows` (same keys in each), then `{"bench": name, "rows": ...}`."""
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print(f"\n{name}")
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    print(json.dumps({"bench": name, "rows": rows}, ensure_ascii=False))
