"""The deployment's progress object (seed 004, "Monitoring Progress")."""

from __future__ import annotations


def percent_complete(completed: int, failed: int, total: int) -> int:
    """(completed + failed) / total * 100, to the nearest integer with halves rounded up.

    Skipped devices do not count toward progress (seed 004). Integer arithmetic, so 0.5 is
    exact and rounds up (Python's round() would round 12.5 to 12).
    """
    if total <= 0:
        return 0
    done = max(0, completed + failed)
    return min(100, (200 * done + total) // (2 * total))


def progress_dict(
    total: int,
    pending: int,
    running: int,
    completed: int,
    failed: int,
    skipped: int,
    current_batch: int,
    total_batches: int,
) -> dict[str, int]:
    """The seed's progress object, camelCase keys."""
    return {
        "total": total,
        "pending": pending,
        "running": running,
        "completed": completed,
        "failed": failed,
        "skipped": skipped,
        "currentBatch": current_batch,
        "totalBatches": total_batches,
        "percentComplete": percent_complete(completed, failed, total),
    }
