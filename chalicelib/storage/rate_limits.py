"""Rate-limit counters: one row per (bucket, fixed window), shared by every Lambda."""

from __future__ import annotations

from chalicelib.storage.database import Later, Packed, Transaction, placeholders
from chalicelib.storage.engines import StatementResult

Counts = dict[tuple[str, int], int]


def count_hits(txn: Transaction, windows: list[tuple[str, int, int, int]]) -> None:
    """Queue: add `hits` to each (bucket, window_start, expires_at, hits), creating rows as
    needed, in one statement. Rows are taken in key order, so two checks never lock them
    crosswise."""
    txn.engine.increment_counters(txn, sorted(set(windows)))


_WINDOW = Packed(bucket="bucket", window_start="window_start", hits="hits")


def read_counts(txn: Transaction, windows: list[tuple[str, int]]) -> Later[Counts]:
    """Queue: hits per (bucket, window_start), for the windows that have any (a send's ten
    windows come back as one row)."""
    buckets = sorted({bucket for bucket, _ in windows})
    in_list = placeholders(buckets)
    starts = [start for _, start in windows]
    wanted = set(windows)

    def counts(result: StatementResult) -> Counts:
        found = ((row["bucket"], int(row["window_start"]), int(row["hits"]))
                 for row in _WINDOW.aggregated_rows(result.rows))
        return {(bucket, start): hits for bucket, start, hits in found
                if (bucket, start) in wanted}

    return txn.later(
        f"SELECT {_WINDOW.aggregated(txn.engine)} FROM rate_limit_windows"  # noqa: S608
        f" WHERE bucket IN ({in_list}) AND window_start BETWEEN %s AND %s",
        [*buckets, min(starts), max(starts)], read=counts)
