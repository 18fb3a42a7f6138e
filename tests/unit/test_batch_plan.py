"""Batch sizing (integers, percentages rounded up) and the deterministic batch plan."""

from __future__ import annotations

import math
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.domain.batch_plan import batch_size, plan_batches


def staggered(size: int | str) -> dict[str, object]:
    return {"type": "staggered", "staggered": {"batchSize": size, "batchDelayMinutes": 0}}


IMMEDIATE = {"type": "immediate"}


@pytest.mark.parametrize(
    ("spec", "resolved", "expected"),
    [
        (50, 1000, 50),
        (50, 20, 20),  # capped at the resolved count
        (1, 5, 1),
        ("10%", 1000, 100),
        ("10%", 95, 10),  # 9.5 rounds up
        ("10%", 91, 10),  # 9.1 rounds up
        ("10%", 30, 3),  # exactly 3: no float error rounding up to 4
        ("10%", 5, 1),  # 0.5 rounds up, never 0
        ("1%", 3, 1),
        ("0.5%", 1000, 5),
        ("33.3%", 10, 4),  # 3.33 rounds up
        ("100%", 37, 37),
        ("25%", 4, 1),
        (" 20 % ", 10, 2),
        (50, 0, 0),
        ("10%", 0, 0),
    ],
)
def test_batch_size(spec: int | str, resolved: int, expected: int) -> None:
    assert batch_size(spec, resolved) == expected


@pytest.mark.parametrize("spec", [0, -1, True, "0%", "101%", "ten%", "10", 2.5])
def test_batch_size_rejects_bad_spec(spec: object) -> None:
    with pytest.raises(ValueError):
        batch_size(spec, 10)  # type: ignore[arg-type]


def test_immediate_is_one_batch_sorted() -> None:
    assert plan_batches(["c", "a", "b"], IMMEDIATE) == [["a", "b", "c"]]


def test_staggered_integer_chunks() -> None:
    ids = [f"d{i:02d}" for i in range(10)]
    assert plan_batches(ids, staggered(4)) == [ids[0:4], ids[4:8], ids[8:10]]


def test_staggered_percent_rounds_up() -> None:
    ids = [f"d{i:02d}" for i in range(25)]
    plan = plan_batches(ids, staggered("10%"))  # 2.5 -> 3 per batch
    assert [len(b) for b in plan] == [3] * 8 + [1]


def test_staggered_100_percent_is_one_batch() -> None:
    ids = [f"d{i}" for i in range(7)]
    assert plan_batches(ids, staggered("100%")) == [sorted(ids)]


def test_no_devices_no_batches() -> None:
    assert plan_batches([], IMMEDIATE) == []
    assert plan_batches([], staggered("10%")) == []


def test_duplicates_collapse() -> None:
    assert plan_batches(["a", "b", "a"], staggered(1)) == [["a"], ["b"]]


def test_unknown_rollout_type() -> None:
    with pytest.raises(ValueError, match="unknown rollout type"):
        plan_batches(["a"], {"type": "canary"})


device_ids = st.lists(st.uuids().map(str), max_size=300, unique=True)
sizes = st.one_of(
    st.integers(1, 400),
    st.integers(1, 100).map(lambda n: f"{n}%"),
    st.decimals(min_value="0.1", max_value="100", places=1).map(lambda d: f"{d}%"),
)


@given(device_ids, sizes)
def test_plan_partitions_input_exactly(ids: list[str], size: int | str) -> None:
    plan = plan_batches(ids, staggered(size))
    flat = [d for batch in plan for d in batch]
    assert sorted(flat) == sorted(ids)
    assert len(flat) == len(set(flat))
    assert all(batch for batch in plan)


@given(device_ids, sizes)
def test_every_batch_at_most_size_and_only_last_smaller(ids: list[str], size: int | str) -> None:
    plan = plan_batches(ids, staggered(size))
    n = batch_size(size, len(ids))
    assert all(len(b) <= n for b in plan)
    assert all(len(b) == n for b in plan[:-1])
    assert len(plan) == (math.ceil(len(ids) / n) if ids else 0)


@given(device_ids, sizes, st.randoms(use_true_random=False))
def test_plan_deterministic_under_permutation(ids: list[str], size: int | str, rnd: object) -> None:
    shuffled = list(ids)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert plan_batches(shuffled, staggered(size)) == plan_batches(ids, staggered(size))
    assert plan_batches(shuffled, IMMEDIATE) == plan_batches(ids, IMMEDIATE)


@given(st.integers(1, 100_000), st.integers(1, 100))
def test_percent_size_is_ceiling_never_zero(resolved: int, percent: int) -> None:
    n = batch_size(f"{percent}%", resolved)
    assert n == max(1, -(-percent * resolved // 100))
    assert 1 <= n <= resolved


def test_uuid_ids_sorted_as_strings() -> None:
    ids = [str(uuid.UUID(int=i)) for i in (3, 1, 2)]
    assert plan_batches(ids, IMMEDIATE) == [sorted(ids)]
