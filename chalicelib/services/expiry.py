"""The expiry engine: deletes expired messages in short batches within a time budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from chalicelib.clock import Clock
from chalicelib.storage import messages
from chalicelib.storage.database import Database
from chalicelib.storage.messages import DeletedMessage

DEFAULT_BATCH_SIZE = 2000
DEFAULT_TIME_BUDGET_S = 40.0  # well inside the scheduled function's 60 s timeout


@dataclass
class PurgeReport:
    deleted: int = 0
    batches: int = 0
    finished: bool = False  # False when the time budget ran out with expired rows left
    removed: list[DeletedMessage] = field(default_factory=list)


def purge_expired(
    *,
    db: Database,
    clock: Clock,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> PurgeReport:
    """Delete messages whose `expires_at` has passed, batch by batch, until none is left or
    the budget is spent. Each batch is its own short transaction, so live sends never wait
    long behind it. Safe to run twice at once: a row deleted by one run is skipped by the other.
    """
    report = PurgeReport()
    deadline = time.monotonic() + time_budget_s
    while time.monotonic() < deadline:
        batch = db.run_transaction(
            "expiry.delete_batch", messages.delete_expired_batch,
            now_ms=clock.now_ms(), limit=batch_size,
        )
        if batch:
            report.batches += 1
            report.deleted += len(batch)
            report.removed.extend(batch)
        if len(batch) < batch_size:
            report.finished = True
            break
    return report
