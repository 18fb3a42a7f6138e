"""Rollout strategies, part 1, as pure rules: step lists and ramps (batch_plan), their validation
(spec), the finished basis and minimum sample (thresholds), the success gate, onFailureThreshold
and the scheduled start (decide), and the dispatch rate window (rate)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import InvalidArgument
from coordinator.domain import rate
from coordinator.domain.batch_plan import plan_batches, planned_sizes, ramp_sizes, step_sizes
from coordinator.domain.rollout import Kind, Snapshot, decide
from coordinator.domain.rollout_config import RolloutConfig
from coordinator.domain.spec import validate_spec
from coordinator.domain.states import DeploymentStatus as D
from coordinator.domain.thresholds import threshold_crossed

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SCRIPT = "11111111-1111-1111-1111-111111111111"
DEVICE = "22222222-2222-2222-2222-222222222222"


# --- step lists and ramps ------------------------------------------------------------------

@pytest.mark.parametrize(("steps", "resolved", "expected"), [
    ([1, "50%", "100%"], 10, [1, 5, 4]),
    ([1, "5%", "25%", "100%"], 100, [1, 5, 25, 69]),
    ([1, "5%", "25%"], 100, [1, 5, 25, 25, 25, 19]),  # the last size repeats
    ([1, "5%", "25%"], 3, [1, 1, 1]),  # percentages round up, never 0
    ([5], 12, [5, 5, 2]),
    ([50, 1], 20, [20]),  # capped at what is left
    (["10%"], 30, [3] * 10),  # exact: 10% of 30 is 3
    ([2, 2], 1, [1]),
])
def test_step_lists(steps: list[int | str], resolved: int, expected: list[int]) -> None:
    assert step_sizes(steps, resolved) == expected


@pytest.mark.parametrize(("start", "factor", "cap", "resolved", "expected"), [
    (1, 2, None, 15, [1, 2, 4, 8]),
    (1, 2, None, 20, [1, 2, 4, 8, 5]),
    (10, 2, "25%", 200, [10, 20, 40, 50, 50, 30]),
    (1, 1.5, None, 12, [1, 2, 3, 5, 1]),  # the previous batch × factor, rounded up
    (3, 1, None, 7, [3, 3, 1]),
    (1, 10, 4, 9, [1, 4, 4]),
    (100, 2, None, 5, [5]),
])
def test_ramps(start: int, factor: float, cap: int | str | None, resolved: int, expected: list[int]) -> None:
    assert ramp_sizes(start, factor, cap, resolved) == expected


@given(st.lists(st.one_of(st.integers(1, 50), st.integers(1, 100).map(lambda p: f"{p}%")), min_size=1, max_size=6),
       st.integers(0, 400))
def test_a_step_list_plans_every_device_once(steps: list[int | str], n: int) -> None:
    rollout = {"type": "staggered", "staggered": {"batches": steps}}
    ids = [f"d{i:04d}" for i in range(n)]
    plan = plan_batches(ids, rollout)
    assert [d for b in plan for d in b] == sorted(ids) and all(b for b in plan)
    assert [len(b) for b in plan] == planned_sizes(rollout, n)


@given(st.integers(1, 30), st.floats(1, 5), st.one_of(st.none(), st.integers(1, 60)), st.integers(0, 400))
def test_a_ramp_never_shrinks_before_its_last_batch_and_respects_its_cap(start: int, factor: float, cap: int | None,
                                                                         n: int) -> None:
    sizes = ramp_sizes(start, factor, cap, n)
    assert sum(sizes) == n and all(s >= 1 for s in sizes)
    assert all(a <= b for a, b in zip(sizes[:-2], sizes[1:-1], strict=True))
    if cap is not None:
        assert max(sizes, default=0) <= cap


# --- validation ------------------------------------------------------------------------------

def spec(rollout: dict[str, Any]) -> dict[str, Any]:
    return {"name": "n", "type": "script", "payload": {"scriptId": SCRIPT}, "targetType": "devices",
            "targetConfig": {"deviceIds": [DEVICE]}, "rolloutConfig": rollout}


def refused(rollout: dict[str, Any]) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        validate_spec(spec(rollout))
    return info.value


@pytest.mark.parametrize(("rollout", "parameter"), [
    ({"type": "staggered", "staggered": {"batchSize": 2, "batches": [1]}}, "rolloutConfig.staggered.batches"),
    ({"type": "staggered", "staggered": {"batches": [1], "ramp": {"start": 1}}}, "rolloutConfig.staggered.ramp"),
    ({"type": "staggered", "staggered": {"batches": []}}, "rolloutConfig.staggered.batches"),
    ({"type": "staggered", "staggered": {"batches": "1,2"}}, "rolloutConfig.staggered.batches"),
    ({"type": "staggered", "staggered": {"batches": [1, 5, "0%"]}}, "rolloutConfig.staggered.batches[2]"),
    ({"type": "staggered", "staggered": {"batches": [1, True]}}, "rolloutConfig.staggered.batches[1]"),
    ({"type": "staggered", "staggered": {"batches": [0]}}, "rolloutConfig.staggered.batches[0]"),
    ({"type": "staggered", "staggered": {"ramp": {"factor": 2}}}, "rolloutConfig.staggered.ramp.start"),
    ({"type": "staggered", "staggered": {"ramp": {"start": 1, "factor": 0.5}}}, "rolloutConfig.staggered.ramp.factor"),
    ({"type": "staggered", "staggered": {"ramp": {"start": 1, "max": "150%"}}}, "rolloutConfig.staggered.ramp.max"),
    ({"type": "staggered", "staggered": {"ramp": {"start": 1, "step": 2}}}, "rolloutConfig.staggered.ramp.step"),
    ({"type": "staggered", "staggered": {"batchSize": 1, "successGatePercent": 0}},
     "rolloutConfig.staggered.successGatePercent"),
    ({"type": "staggered", "staggered": {"batchSize": 1, "successGatePercent": 101}},
     "rolloutConfig.staggered.successGatePercent"),
    ({"type": "staggered", "staggered": {"batchSize": 1, "failureBasis": "devices"}},
     "rolloutConfig.staggered.failureBasis"),
    ({"type": "staggered", "staggered": {"batchSize": 1, "minFinishedForPercent": -1}},
     "rolloutConfig.staggered.minFinishedForPercent"),
    ({"maxPerMinute": 0}, "rolloutConfig.maxPerMinute"),
    ({"maxPerMinute": 2.5}, "rolloutConfig.maxPerMinute"),
    ({"onFailureThreshold": "abort"}, "rolloutConfig.onFailureThreshold"),
    ({"startAt": "tomorrow"}, "rolloutConfig.startAt"),
    ({"startAt": "2030-01-01T10:00:00"}, "rolloutConfig.startAt"),
    ({"startAt": 1893456000}, "rolloutConfig.startAt"),
])
def test_each_strategy_field_is_validated_naming_it(rollout: dict[str, Any], parameter: str) -> None:
    err = refused(rollout)
    assert err.details["parameter"] == parameter and str(err).startswith(parameter)


def test_the_seed_body_is_normalized_as_before() -> None:
    out = validate_spec(spec({"type": "staggered", "staggered": {"batchSize": "10%"}}))["rolloutConfig"]
    assert out == {"type": "staggered", "staggered": {"batchSize": "10%", "batchDelayMinutes": 0,
                                                      "pauseOnFailureCount": None, "pauseOnFailurePercent": None},
                   "respectMaintenanceWindows": False, "retryConfig": {"maxRetries": 0, "backoffMinutes": [5]},
                   "installTimeoutMinutes": None}
    cfg = RolloutConfig.parse(out)
    assert (cfg.max_per_minute, cfg.on_failure_threshold, cfg.start_at) == (None, "pause", None)
    assert (cfg.staggered.failure_basis, cfg.staggered.min_finished_for_percent) == ("targets", 0)


def test_strategy_fields_are_normalized_and_parsed() -> None:
    out = validate_spec(spec({
        "type": "staggered", "maxPerMinute": 30, "onFailureThreshold": "rollback", "startAt": "2030-01-31T22:00:00Z",
        "staggered": {"ramp": {"start": 10, "max": " 25 % "}, "successGatePercent": 90, "failureBasis": "finished",
                      "minFinishedForPercent": 20}}))["rolloutConfig"]
    assert out["staggered"]["ramp"] == {"start": 10, "factor": 2, "max": "25%"}
    assert "batchSize" not in out["staggered"] and out["startAt"] == "2030-01-31T22:00:00+00:00"
    cfg = RolloutConfig.parse(out)
    assert cfg.start_at == datetime(2030, 1, 31, 22, tzinfo=UTC) and cfg.max_per_minute == 30
    assert cfg.staggered.success_gate_percent == 90 and cfg.on_failure_threshold == "rollback"
    assert planned_sizes(out, 100) == [10, 20, 25, 25, 20]


# --- threshold basis and sample --------------------------------------------------------------

def crossed(**kw: Any) -> str | None:
    args: dict[str, Any] = {"failed": 0, "total": 1000, "failure_baseline": 0, "pause_on_failure_count": None,
                            "pause_on_failure_percent": 20}
    return threshold_crossed(**{**args, **kw})


def test_the_finished_basis_counts_over_finished_devices() -> None:
    assert crossed(failed=5, finished=10) is None  # 0.5% of the targets
    reason = crossed(failed=5, finished=10, failure_basis="finished")
    assert reason is not None and "50% of the 10 devices finished failed (5)" in reason
    assert crossed(failed=1, finished=10, failure_basis="finished") is None  # 10% < 20%
    # re-armed on resume: only what finished since counts
    assert crossed(failed=6, finished=20, failure_baseline=5, finished_baseline=10, failure_basis="finished") is None
    assert crossed(failed=8, finished=20, failure_baseline=5, finished_baseline=10, failure_basis="finished")


def test_min_finished_holds_the_percent_threshold_back_not_the_count() -> None:
    kw: dict[str, Any] = {"failure_basis": "finished", "min_finished_for_percent": 5}
    assert crossed(failed=2, finished=2, **kw) is None
    assert crossed(failed=2, finished=4, **kw) is None
    assert crossed(failed=2, finished=5, **kw)  # 40% of 5
    assert crossed(failed=2, finished=2, pause_on_failure_count=2, **kw)  # the count is not held back
    assert crossed(failed=300, finished=300, total=1000, min_finished_for_percent=301) is None


# --- decide: gate, action, scheduled start ---------------------------------------------------

BASE = Snapshot(status=D.RUNNING, current_batch=1, total_batches=3, total=10, open_records=0, downloading=0,
                installing=0, completed=1, failed=1, failure_baseline=0, batch_finished_at=NOW, next_batch_at=None,
                batch_delay_minutes=5, pause_on_failure_count=None, pause_on_failure_percent=None)


def test_the_success_gate_is_checked_after_the_bake_time() -> None:
    gated = replace(BASE, success_gate_percent=75, batch_completed=1, batch_devices=2)
    assert decide(gated, NOW).kind == Kind.WAIT  # baking
    d = decide(gated, NOW + timedelta(minutes=5))
    assert d.kind == Kind.PAUSE and d.status == D.PAUSED
    assert "1 of the 2 devices of batch 1 completed (50%), below successGatePercent=75" in d.reason
    assert decide(replace(gated, batch_completed=2), NOW + timedelta(minutes=5)).kind == Kind.START_BATCH
    assert decide(replace(gated, gate_passed=True), NOW + timedelta(minutes=5)).kind == Kind.START_BATCH
    assert decide(replace(gated, success_gate_percent=50), NOW + timedelta(minutes=5)).kind == Kind.START_BATCH


@pytest.mark.parametrize(("action", "kind", "status"), [
    ("pause", Kind.PAUSE, D.PAUSED), ("cancel", Kind.CANCEL, D.CANCELLED), ("rollback", Kind.ROLLBACK, D.ROLLBACK)])
def test_on_failure_threshold_between_batches(action: str, kind: Kind, status: str) -> None:
    d = decide(replace(BASE, pause_on_failure_count=1, on_failure_threshold=action), NOW)
    assert d.kind == kind and d.status == status and "pauseOnFailureCount=1" in d.reason
    # paused by hand, the batch ends past the threshold: cancel and rollback still act
    hand = decide(replace(BASE, status=D.PAUSED, pause_on_failure_count=1, on_failure_threshold=action), NOW)
    assert hand.kind == kind


def test_on_failure_threshold_at_the_end() -> None:
    last = replace(BASE, current_batch=3, pause_on_failure_count=1)
    assert decide(last, NOW).status == D.FAILED
    assert decide(replace(last, on_failure_threshold="cancel"), NOW).status == D.FAILED  # nothing left to cancel
    assert decide(replace(last, on_failure_threshold="rollback"), NOW).kind == Kind.ROLLBACK


def test_a_scheduled_start_waits_for_its_time() -> None:
    waiting = replace(BASE, status=D.DOWNLOADING, current_batch=0, completed=0, failed=0, batch_finished_at=None,
                      next_batch_at=NOW + timedelta(minutes=10))
    d = decide(waiting, NOW)
    assert d.kind == Kind.WAIT and d.at == NOW + timedelta(minutes=10) and d.status == D.RUNNING
    assert decide(waiting, NOW + timedelta(minutes=10)).kind == Kind.START_BATCH
    assert decide(replace(waiting, status=D.PAUSED), NOW + timedelta(minutes=10)).kind == Kind.NONE


# --- the rate window -------------------------------------------------------------------------

def test_the_rate_window_slides() -> None:
    assert rate.budget(4, []) == 4 and rate.next_slot(4, [], NOW) is None
    recent = [NOW - timedelta(seconds=s) for s in (1, 10, 20, 50)]  # newest first
    assert rate.budget(4, recent) == 0
    assert rate.next_slot(4, recent, NOW) == NOW + timedelta(seconds=10)  # the 50 s old one ages out
    assert rate.budget(5, recent) == 1 and rate.next_slot(5, recent, NOW) is None
    assert rate.next_slot(2, recent, NOW) == NOW + timedelta(seconds=50)


def test_the_strategies_in_words() -> None:
    from common.rollout_text import strategy_lines

    assert strategy_lines({"type": "staggered", "staggered": {"batchSize": 5}}) == []
    lines = strategy_lines({"type": "staggered", "maxPerMinute": 30, "onFailureThreshold": "rollback",
                            "startAt": "2030-01-31T22:00:00+00:00",
                            "staggered": {"batches": [1, "50%"], "successGatePercent": 90, "failureBasis": "finished",
                                          "minFinishedForPercent": 20}})
    assert lines == ["batches: 1, 50% (the last size repeats)", "rate: at most 30 dispatches a minute",
                     "success gate: the next batch starts only if 90% of the last one completed (checked after the "
                     "batch delay), else the deployment pauses",
                     "failure percent: over the devices finished (since the last resume), not all targets",
                     "failure percent: not applied before 20 devices finished",
                     "a crossed threshold: rollback (not pause)",
                     "scheduled: the first batch starts at 2030-01-31T22:00:00+00:00"]
    ramp = strategy_lines({"type": "staggered", "staggered": {"ramp": {"start": 1, "factor": 2, "max": "25%"}}})
    assert ramp == ["ramp: 1 device(s) first, each batch x2, at most 25%"]
