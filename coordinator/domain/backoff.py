"""Retry backoff (seed 004, retryConfig).

`backoffMinutes[0]` is the wait before the first retry, `[1]` before the second, and the last
value is reused for every retry past the end: `[5, 15, 60]` waits 5, 15, 60, 60, 60 … minutes.
"""

from __future__ import annotations

from collections.abc import Sequence


def backoff_minutes(backoff: Sequence[float], retry_number: int) -> float:
    """Minutes to wait before retry number `retry_number` (1-based); 0 for an empty array."""
    if retry_number < 1:
        raise ValueError(f"retry_number is 1-based, got {retry_number}")
    if not backoff:
        return 0.0
    return float(backoff[min(retry_number, len(backoff)) - 1])


def can_auto_retry(retry_count: int, max_retries: int) -> bool:
    """True if another retry is allowed after `retry_count` retries already used."""
    return retry_count < max_retries
