"""Rate-limit counters: one row per (bucket, fixed window), shared by every Lambda."""

from __future__ import annotations

from chalicelib.storage.database import Later, Packed, Transaction, placeholders

Counts = dict[tuple[str, int], int]


def count_hits(txn: Transaction, windows: list[tuple[str, int, int, int]]) -> None:
    """Queue: add `hits` to each (bucket, window_start, expires_at, hits), creating rows as
    needed, in one statement. Rows are taken in key order, so two checks never lock them
    crosswise."""
    txn.engine.increment_counters(txn, sorted(set(windows)))


_WINDOW = Packed(bucket="bucket", window_start="window_start", hits="hits")


def read_counts(txn: Transaction, windows: list[tuple[str, int]]) -> Later[Counts]:
    """Queue: hits per (bucket, window_start) for these windows, and maybe a few others of
    the same buckets (a send's ten windows come back as one row)."""
    buckets = sorted({bucket for bucket, _ in windows})
    starts = [start for _, start in windows]

    def counts(packed: str | None) -> Counts:
        return {(bucket, int(start)): int(hits)
                for bucket, start, hits in _WINDOW.aggregated_values(packed)}

    return txn.later_value(
        f"SELECT {_WINDOW.aggregated(txn.engine)} FROM rate_limit_windows"  # noqa: S608
        f" WHERE bucket IN ({placeholders(buckets)}) AND window_start BETWEEN %s AND %s",
        [*buckets, min(starts), max(starts)], read=counts)
