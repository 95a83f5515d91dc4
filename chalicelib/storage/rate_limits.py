"""Rate-limit counters: one row per (bucket, fixed window), shared by every Lambda."""

from __future__ import annotations

from chalicelib.storage.database import Transaction, placeholders


def count_hits(txn: Transaction, windows: list[tuple[str, int, int, int]]) -> None:
    """Add `hits` to each (bucket, window_start, expires_at, hits), creating rows as needed, in
    one statement. Rows are taken in key order, so two checks never lock them crosswise."""
    txn.engine.increment_counters(txn, sorted(set(windows)))


def read_counts(txn: Transaction, windows: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Hits per (bucket, window_start), for the windows that have any."""
    if not windows:
        return {}
    buckets = sorted({bucket for bucket, _ in windows})
    in_list = placeholders(buckets)
    starts = [start for _, start in windows]
    txn.execute(
        "SELECT bucket, window_start, hits FROM rate_limit_windows"  # noqa: S608
        f" WHERE bucket IN ({in_list}) AND window_start BETWEEN %s AND %s",
        [*buckets, min(starts), max(starts)],
    )
    wanted = set(windows)
    return {(row["bucket"], int(row["window_start"])): int(row["hits"])
            for row in txn.fetchall() if (row["bucket"], int(row["window_start"])) in wanted}
