"""Auto-pause thresholds of a staggered rollout (seed 004, "Retry and Failure Handling").

Both thresholds count records that *failed* (a device whose attempt failed and whose retry was
then not dispatched counts as failed too). `pauseOnFailurePercent` is, as seed 004 says, a
"percentage of total target devices": failed ÷ resolved targets × 100. (A basis over finished
devices with a minimum sample is a rollout-strategy option, never the default:
`staggered.failureBasis: "finished"` and `staggered.minFinishedForPercent`.)

Re-arm after resume: when an operator resumes, the engine stores the failed count of that
moment as a baseline, and both thresholds count only the failures since. Otherwise a deployment
auto-paused at pauseOnFailureCount=3 would pause again right after every resume.
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
    total: int,
    failure_baseline: int,
    pause_on_failure_count: int | None,
    pause_on_failure_percent: float | None,
    failure_basis: str = "targets",
    finished: int = 0,
    finished_baseline: int = 0,
    min_finished_for_percent: int = 0,
) -> str | None:
    """A one-line reason if a threshold is reached (count first), else None.

    `total` is the number of target devices resolved at initialize. `finished` counts completed
    and failed records; with `failure_basis="finished"` the percentage is over the devices
    finished since the last resume, and `min_finished_for_percent` holds the percent threshold
    back until that many devices finished (since the last resume)."""
    failed_since = max(0, failed - failure_baseline)
    since = " since the last resume" if failure_baseline else ""
    finished_since = max(0, finished - finished_baseline)

    if pause_on_failure_count is not None and failed_since >= pause_on_failure_count:
        noun = "device" if failed_since == 1 else "devices"
        return (f"{failed_since} {noun} failed{since}, "
                f"reaching pauseOnFailureCount={pause_on_failure_count}")

    if pause_on_failure_percent is None or failed_since == 0 or finished_since < min_finished_for_percent:
        return None
    if failure_basis == "finished":
        basis, what = finished_since, f"the {finished_since} devices finished{since}"
        if basis > 0:
            rate = Fraction(failed_since * 100, basis)
            if rate >= _exact(pause_on_failure_percent):
                return (f"{_fmt(rate)}% of {what} failed ({failed_since}), "
                        f"reaching pauseOnFailurePercent={float(pause_on_failure_percent):g}")
        return None
    if total > 0:
        rate = Fraction(failed_since * 100, total)
        if rate >= _exact(pause_on_failure_percent):
            return (f"{_fmt(rate)}% of the {total} target devices failed{since} "
                    f"({failed_since}), reaching pauseOnFailurePercent={float(pause_on_failure_percent):g}")
    return None
