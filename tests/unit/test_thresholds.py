"""Auto-pause thresholds: count, percent of the total target devices (seed 004), re-arm after resume."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coordinator.domain.thresholds import threshold_crossed


def crossed(failed: int, total: int, *, count: int | None = None, percent: float | None = None,
            failure_baseline: int = 0) -> str | None:
    return threshold_crossed(failed=failed, total=total, failure_baseline=failure_baseline,
                             pause_on_failure_count=count, pause_on_failure_percent=percent)


def test_no_thresholds_never_cross() -> None:
    assert crossed(100, 100) is None


def test_count_triggers_at_threshold_not_before() -> None:
    assert crossed(2, 10, count=3) is None
    assert crossed(3, 10, count=3) == "3 devices failed, reaching pauseOnFailureCount=3"
    assert crossed(4, 10, count=3) == "4 devices failed, reaching pauseOnFailureCount=3"


def test_count_of_one_is_singular() -> None:
    assert crossed(1, 1, count=1) == "1 device failed, reaching pauseOnFailureCount=1"


def test_percent_is_over_the_total_target_devices() -> None:
    # Seed 004: "percentage of total target devices".
    assert crossed(20, 100, percent=20) == (
        "20% of the 100 target devices failed (20), reaching pauseOnFailurePercent=20")
    assert crossed(19, 100, percent=20) is None
    # 1000 targets, 5 of a first batch of 10 failed: 0.5% of the targets, not 50%.
    assert crossed(5, 1000, percent=20) is None
    assert crossed(5, 1000, percent=0.5) is not None


def test_percent_needs_a_failure_and_targets() -> None:
    assert crossed(0, 0, percent=0.01) is None
    assert crossed(0, 10, percent=0.01) is None
    assert crossed(3, 3, percent=50, failure_baseline=3) is None


def test_percent_boundary_is_inclusive_and_exact() -> None:
    assert crossed(1, 1000, percent=0.1) is not None  # exactly 0.1%
    assert crossed(1, 1001, percent=0.1) is None
    assert crossed(1, 3, percent=33.3) is not None
    assert crossed(1, 3, percent=33.4) is None
    assert crossed(1, 8, percent=12.5) is not None


def test_percent_100_needs_every_target_failed() -> None:
    assert crossed(4, 5, percent=100) is None
    assert crossed(5, 5, percent=100) is not None


def test_count_reported_first_when_both_cross() -> None:
    reason = crossed(3, 3, count=3, percent=50)
    assert reason is not None and reason.startswith("3 devices failed")


def test_rearm_after_resume_count() -> None:
    # Auto-paused at 3 failures; the operator resumes: the baseline is 3 failed.
    assert crossed(3, 100, count=3, failure_baseline=3) is None
    assert crossed(5, 100, count=3, failure_baseline=3) is None
    assert crossed(6, 100, count=3, failure_baseline=3) == (
        "3 devices failed since the last resume, reaching pauseOnFailureCount=3")


def test_rearm_after_resume_percent() -> None:
    # 100 targets, paused with 20 failed (20% >= 20%). Resume: baseline 20.
    assert crossed(20, 100, percent=20, failure_baseline=20) is None
    assert crossed(39, 100, percent=20, failure_baseline=20) is None
    assert crossed(40, 100, percent=20, failure_baseline=20) == (
        "20% of the 100 target devices failed since the last resume (20), reaching pauseOnFailurePercent=20")


def test_fractional_rate_is_rounded_in_reason() -> None:
    assert crossed(1, 3, percent=30) == (
        "33.3% of the 3 target devices failed (1), reaching pauseOnFailurePercent=30")


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 10_000))
def test_count_property(failed: int, baseline: int, count: int) -> None:
    result = crossed(failed, failed + 5, count=count, failure_baseline=baseline)
    assert (result is not None) == (failed - baseline >= count)


@given(st.integers(0, 500), st.integers(1, 1000), st.integers(1, 100))
def test_percent_property(failed: int, total: int, percent: int) -> None:
    result = crossed(failed, total, percent=percent)
    expected = failed > 0 and failed * 100 >= percent * total
    assert (result is not None) == expected


def test_worked_example_from_docs() -> None:
    """docs/deployments-rules.md: 100 devices, batches of 10, count 5, percent 10."""
    def check(failed: int, fb: int) -> str | None:
        return crossed(failed, 100, count=5, percent=10, failure_baseline=fb)

    assert check(1, 0) is None
    assert check(5, 0) == "5 devices failed, reaching pauseOnFailureCount=5"
    assert check(5, 5) is None  # right after the resume
    assert check(8, 5) is None
    assert check(10, 5) == "5 devices failed since the last resume, reaching pauseOnFailureCount=5"
    assert crossed(10, 100, percent=10) is not None
