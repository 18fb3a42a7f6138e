"""`rolloutConfig.maxPerMinute`: at most N jobs dispatched by a deployment in any 60 seconds.

A sliding window over the stored dispatch times (the jobs' `created_at`), so no counter has to
be kept and nothing polls: the engine dispatches what the window allows now and sleeps until the
next slot opens, when the oldest dispatch of the window is a minute old. Pure: times passed in.
Immediate and staggered rollouts alike; automatic retries count as dispatches.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

WINDOW = timedelta(minutes=1)


def window_start(now: datetime) -> datetime:
    """Dispatches after this moment count against the cap at `now`."""
    return now - WINDOW


def budget(max_per_minute: int, recent: Sequence[datetime]) -> int:
    """How many jobs may go out now, given the dispatch times of the last minute."""
    return max(0, max_per_minute - len(recent))


def next_slot(max_per_minute: int, recent_newest_first: Sequence[datetime], now: datetime) -> datetime | None:
    """When one more job may go out (None: now). `recent_newest_first` are the dispatch times in
    the last minute, newest first; once the `max_per_minute`-th newest is a minute old, fewer than
    the cap remain in the window."""
    if len(recent_newest_first) < max_per_minute:
        return None
    return max(now, recent_newest_first[max_per_minute - 1] + WINDOW)
