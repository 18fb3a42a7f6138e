"""The record machine's `Revoked` event (domain/records.py): nothing waits for a revoked device."""

from __future__ import annotations

from datetime import UTC, datetime

from common.states import JobState
from common.states import RecordStatus as R
from coordinator.domain import records as rm
from coordinator.domain.rollout_config import RolloutConfig

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CTX = rm.Context(config=RolloutConfig.parse({"type": "immediate"}), now=NOW)


def moves(out: list[rm.Instruction]) -> list[str]:
    return [i.move for i in out if isinstance(i, rm.Move)]


def test_a_pending_record_is_skipped_and_stops_waiting() -> None:
    rec = rm.Record(id="r", status=R.PENDING, wait_until=NOW)
    (move,) = rm.handle(rec, rm.Revoked(job=None), CTX)
    assert isinstance(move, rm.Move) and move.move == "skip"
    assert move.values["skip_reason"] == rm.REVOKED and move.values["wait_until"] is None


def test_a_pending_retry_after_a_failed_attempt_stays_failed() -> None:
    rec = rm.Record(id="r", status=R.PENDING, runs=1, error="exit 3", job_id="j")
    assert moves(rm.handle(rec, rm.Revoked(job=None), CTX)) == ["undeliverable"]


def test_an_undelivered_job_is_withdrawn_and_its_record_skipped() -> None:
    rec = rm.Record(id="r", status=R.DOWNLOADING, job_id="j", attempts=1)
    out = rm.handle(rec, rm.Revoked(job=rm.Job(id="j", state=JobState.QUEUED)), CTX)
    assert [type(i) for i in out] == [rm.Withdraw, rm.Move] and moves(out) == ["withdraw_skip"]


def test_a_running_attempt_fails_without_retry() -> None:
    cfg = RolloutConfig.parse({"type": "immediate", "retryConfig": {"maxRetries": 3}})
    ctx = rm.Context(config=cfg, now=NOW)
    rec = rm.Record(id="r", status=R.INSTALLING, job_id="j", attempts=1, runs=1)
    out = rm.handle(rec, rm.Revoked(job=rm.Job(id="j", state=JobState.INSTALLING, ran=True)), ctx)
    assert moves(out) == ["fail"] and isinstance(out[0], rm.Withdraw)


def test_finished_records_are_left_alone() -> None:
    for status in (R.COMPLETED, R.FAILED, R.SKIPPED):
        assert rm.handle(rm.Record(id="r", status=status), rm.Revoked(job=None), CTX) == []
