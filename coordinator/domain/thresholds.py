"""Auto-pause thresholds of a staggered rollout (seed 004, "Retry and Failure Handling").

Both thresholds count records that *failed all their attempts* (`failed`); the percentage is
taken over records that reached a final outcome (`finished` = completed + failed), never over
the whole target list: devices not dispatched yet have not had a chance to fail, and counting
them would let a rollout burn through most of a fleet before the percentage could trip.

Re-arm after resume: when an operator resumes, the engine stores the failed and finished counts
of that moment as baselines, and the thresholds count only what happened since. Otherwise a
deployment auto-paused at pauseOnFailureCount=3 would pause again right after every resume.
"""

from __future__ import annotations

from fractions import Fraction


def _exact(value: float) -> Fraction:
    # Through the shortest repr, so a threshold written as 0.1 is exactly 1/10, not the binary
    # float just above it (which would make "1 of 1000 failed" miss a 0.1% threshold).
    return Fraction(repr(float(value)))


def _fmt(value: Fraction | float) -> str:
    # Three significant digits: 40, 33.3, 12.5, 0.05; never "40.0".
    return f"{float(value):.3g}"


def threshold_crossed(
    *,
    failed: int,
    finished: int,
    failure_baseline: int,
    finished_baseline: int,
    pause_on_failure_count: int | None,
    pause_on_failure_percent: float | None,
) -> str | None:
    """A one-line reason if a threshold is reached (count first), else None."""
    failed_since = max(0, failed - failure_baseline)
    finished_since = max(0, finished - finished_baseline)
    since = " since the last resume" if failure_baseline or finished_baseline else ""

    if pause_on_failure_count is not None and failed_since >= pause_on_failure_count:
        noun = "device" if failed_since == 1 else "devices"
        return (f"{failed_since} {noun} failed{since}, "
                f"reaching pauseOnFailureCount={pause_on_failure_count}")

    if pause_on_failure_percent is not None and finished_since > 0:
        rate = Fraction(failed_since * 100, finished_since)
        if rate >= _exact(pause_on_failure_percent):
            return (f"{_fmt(rate)}% of finished devices failed{since} "
                    f"({failed_since} of {finished_since}), "
                    f"reaching pauseOnFailurePercent={float(pause_on_failure_percent):g}")
    return None
