"""Progress arithmetic: (completed + failed) / total, rounded half up; skipped not counted."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from coordinator.domain.progress import percent_complete, progress_dict


def test_basic() -> None:
    assert percent_complete(0, 0, 10) == 0
    assert percent_complete(3, 2, 10) == 50
    assert percent_complete(10, 0, 10) == 100
    assert percent_complete(0, 10, 10) == 100


def test_total_zero_is_zero() -> None:
    assert percent_complete(0, 0, 0) == 0


def test_rounds_to_nearest() -> None:
    assert percent_complete(1, 0, 3) == 33  # 33.33
    assert percent_complete(2, 0, 3) == 67  # 66.67


def test_half_rounds_up_not_to_even() -> None:
    assert percent_complete(1, 0, 8) == 13  # 12.5; round() would give 12
    assert percent_complete(1, 0, 200) == 1  # 0.5; round() would give 0
    assert percent_complete(5, 0, 200) == 3  # 2.5; round() would give 2
    assert percent_complete(0, 1, 40) == 3  # 2.5 from failures alone


def test_skipped_devices_do_not_count() -> None:
    # 10 devices: 4 completed, 1 failed, 5 skipped -> 50%, not 100%.
    assert progress_dict(10, 0, 0, 4, 1, 5, 1, 1)["percentComplete"] == 50


def test_progress_dict_shape() -> None:
    assert progress_dict(total=20, pending=8, running=2, completed=7, failed=1, skipped=2,
                         current_batch=2, total_batches=4) == {
        "total": 20, "pending": 8, "running": 2, "completed": 7, "failed": 1, "skipped": 2,
        "currentBatch": 2, "totalBatches": 4, "percentComplete": 40,
    }


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 10_000))
def test_matches_exact_half_up(completed: int, failed: int, extra: int) -> None:
    total = completed + failed + extra
    if total == 0:
        assert percent_complete(completed, failed, total) == 0
        return
    exact = Fraction(100 * (completed + failed), total)
    result = percent_complete(completed, failed, total)
    assert exact - Fraction(1, 2) < result <= exact + Fraction(1, 2)
    assert 0 <= result <= 100
