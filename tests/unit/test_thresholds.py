"""Auto-pause thresholds: count, percent of finished devices, re-arm after resume."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coordinator.domain.thresholds import threshold_crossed


def crossed(failed: int, finished: int, *, count: int | None = None, percent: float | None = None,
            failure_baseline: int = 0, finished_baseline: int = 0) -> str | None:
    return threshold_crossed(failed=failed, finished=finished, failure_baseline=failure_baseline,
                             finished_baseline=finished_baseline, pause_on_failure_count=count,
                             pause_on_failure_percent=percent)


def test_no_thresholds_never_cross() -> None:
    assert crossed(100, 100) is None


def test_count_triggers_at_threshold_not_before() -> None:
    assert crossed(2, 10, count=3) is None
    assert crossed(3, 10, count=3) == "3 devices failed, reaching pauseOnFailureCount=3"
    assert crossed(4, 10, count=3) == "4 devices failed, reaching pauseOnFailureCount=3"


def test_count_of_one_is_singular() -> None:
    assert crossed(1, 1, count=1) == "1 device failed, reaching pauseOnFailureCount=1"


def test_percent_is_over_finished_devices() -> None:
    assert crossed(2, 5, percent=20) == (
        "40% of finished devices failed (2 of 5), reaching pauseOnFailurePercent=20")
    assert crossed(1, 5, percent=20) == (
        "20% of finished devices failed (1 of 5), reaching pauseOnFailurePercent=20")
    assert crossed(1, 6, percent=20) is None  # 16.7%


def test_percent_not_against_devices_not_yet_dispatched() -> None:
    # 1000 targets, first batch of 10 finished with 5 failures: 50% of the finished devices.
    # A rule over all targets would see 0.5% and keep going; ours pauses.
    assert crossed(5, 10, percent=20) is not None
    # And there is no "total" parameter through which not-dispatched devices could leak in.


def test_percent_needs_finished_devices() -> None:
    assert crossed(0, 0, percent=0.01) is None
    assert crossed(3, 3, percent=50, failure_baseline=3, finished_baseline=3) is None


def test_percent_boundary_is_inclusive_and_exact() -> None:
    assert crossed(1, 1000, percent=0.1) is not None  # exactly 0.1%
    assert crossed(1, 1001, percent=0.1) is None
    assert crossed(1, 3, percent=33.3) is not None
    assert crossed(1, 3, percent=33.4) is None
    assert crossed(1, 8, percent=12.5) is not None


def test_percent_100_needs_every_finished_device_failed() -> None:
    assert crossed(4, 5, percent=100) is None
    assert crossed(5, 5, percent=100) is not None


def test_count_reported_first_when_both_cross() -> None:
    reason = crossed(3, 3, count=3, percent=50)
    assert reason is not None and reason.startswith("3 devices failed")


def test_rearm_after_resume_count() -> None:
    # Auto-paused at 3 failures; the operator resumes: baselines are 3 failed, 10 finished.
    assert crossed(3, 10, count=3, failure_baseline=3, finished_baseline=10) is None
    assert crossed(5, 20, count=3, failure_baseline=3, finished_baseline=10) is None
    assert crossed(6, 20, count=3, failure_baseline=3, finished_baseline=10) == (
        "3 devices failed since the last resume, reaching pauseOnFailureCount=3")


def test_rearm_after_resume_percent() -> None:
    # Paused with 2 of 5 failed (40% >= 20%). Resume: baselines 2 failed, 5 finished.
    assert crossed(2, 5, percent=20, failure_baseline=2, finished_baseline=5) is None
    # Next batch: 10 more finish, 1 fails -> 10% since resume (overall 20% would have crossed).
    assert crossed(3, 15, percent=20, failure_baseline=2, finished_baseline=5) is None
    # 3 of 10 since resume -> 30%.
    assert crossed(5, 15, percent=20, failure_baseline=2, finished_baseline=5) == (
        "30% of finished devices failed since the last resume (3 of 10), "
        "reaching pauseOnFailurePercent=20")


def test_fractional_rate_is_rounded_in_reason() -> None:
    assert crossed(1, 3, percent=30) == (
        "33.3% of finished devices failed (1 of 3), reaching pauseOnFailurePercent=30")


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 10_000))
def test_count_property(failed: int, baseline: int, count: int) -> None:
    result = crossed(failed, failed + 5, count=count, failure_baseline=baseline)
    assert (result is not None) == (failed - baseline >= count)


@given(st.integers(0, 500), st.integers(0, 500), st.integers(1, 100))
def test_percent_property(failed: int, completed: int, percent: int) -> None:
    finished = failed + completed
    result = crossed(failed, finished, percent=percent)
    expected = finished > 0 and failed * 100 >= percent * finished
    assert (result is not None) == expected


def test_worked_example_from_docs() -> None:
    """docs/deployments-rules.md: 100 devices, batches of 10, count 3, percent 20."""
    def check(failed: int, finished: int, fb: int, nb: int) -> str | None:
        return crossed(failed, finished, count=3, percent=20, failure_baseline=fb, finished_baseline=nb)

    assert check(1, 10, 0, 0) is None
    assert check(4, 20, 0, 0) == "4 devices failed, reaching pauseOnFailureCount=3"
    assert check(4, 20, 4, 20) is None  # right after the resume
    assert check(5, 30, 4, 20) is None
    assert check(7, 40, 4, 20) == (
        "3 devices failed since the last resume, reaching pauseOnFailureCount=3")
