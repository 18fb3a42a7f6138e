"""Retry backoff: array indexing, reuse of the last value, retry allowance."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.domain.backoff import backoff_minutes, can_auto_retry


def test_seed_example_5_15_60() -> None:
    backoff = [5, 15, 60]
    assert [backoff_minutes(backoff, n) for n in range(1, 7)] == [5, 15, 60, 60, 60, 60]


def test_single_value_reused() -> None:
    assert backoff_minutes([5], 1) == 5
    assert backoff_minutes([5], 10) == 5


def test_fractional_minutes_kept() -> None:
    assert backoff_minutes([0.5, 1.5], 2) == 1.5


def test_empty_array_means_no_wait() -> None:
    assert backoff_minutes([], 1) == 0
    assert backoff_minutes([], 3) == 0


def test_retry_number_is_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_minutes([5, 15], 0)


def test_can_auto_retry_counts_retries_used() -> None:
    assert not can_auto_retry(0, 0)
    assert can_auto_retry(0, 3)
    assert can_auto_retry(2, 3)
    assert not can_auto_retry(3, 3)
    assert not can_auto_retry(4, 3)


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=10), st.integers(1, 100))
def test_backoff_property(backoff: list[float], n: int) -> None:
    expected = backoff[n - 1] if n <= len(backoff) else backoff[-1]
    assert backoff_minutes(backoff, n) == expected
