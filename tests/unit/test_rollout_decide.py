"""The pure rollout decision (`coordinator.domain.rollout.decide`), one test per rule and per
troubleshooting case of seed 004 ("stuck in pending", "auto-paused unexpectedly", "a device was
skipped", "keeps failing even after retries", "cannot edit or delete")."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from common.errors import Conflict
from coordinator.domain.backoff import can_auto_retry
from coordinator.domain.rollout import Kind, Snapshot, decide
from coordinator.domain.states import DeploymentStatus as D
from coordinator.domain.states import check_action

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def snap(**kw: object) -> Snapshot:
    base = Snapshot(status=D.DOWNLOADING, current_batch=1, total_batches=3, open_records=0, downloading=0,
                    installing=0, completed=0, failed=0, failure_baseline=0, total=100,
                    batch_finished_at=None, next_batch_at=None, batch_delay_minutes=0,
                    pause_on_failure_count=None, pause_on_failure_percent=None)
    return replace(base, **kw)  # type: ignore[arg-type]


# --- "Deployment is stuck in pending and nothing is happening" ---------------------------------

@pytest.mark.parametrize("status", [D.DRAFT, D.PENDING])
def test_nothing_happens_before_start(status: D) -> None:
    assert decide(snap(status=status, current_batch=0), NOW).kind == Kind.NONE


def test_start_dispatches_the_first_batch() -> None:
    d = decide(snap(status=D.DOWNLOADING, current_batch=0), NOW)
    assert (d.kind, d.batch, d.status) == (Kind.START_BATCH, 1, D.DOWNLOADING)


def test_start_before_initialize_says_initialize_first() -> None:
    with pytest.raises(Conflict, match="initialize it first"):
        check_action("start", D.DRAFT)
    assert check_action("start", D.PENDING) == D.DOWNLOADING


# --- batches and delays --------------------------------------------------------------------------

def test_batch_in_flight_waits_and_reports_its_phase() -> None:
    d = decide(snap(open_records=3, downloading=1, installing=2), NOW)
    assert (d.kind, d.status) == (Kind.NONE, D.INSTALLING)
    d = decide(snap(status=D.INSTALLING, open_records=3, downloading=3), NOW)
    assert (d.kind, d.status) == (Kind.NONE, D.DOWNLOADING)


def test_next_batch_waits_batch_delay_after_the_batch_finished() -> None:
    finished = NOW - timedelta(minutes=10)
    s = snap(completed=5, batch_finished_at=finished, batch_delay_minutes=30)
    d = decide(s, NOW)
    assert (d.kind, d.at, d.status) == (Kind.WAIT, finished + timedelta(minutes=30), D.RUNNING)
    d = decide(s, finished + timedelta(minutes=30))
    assert (d.kind, d.batch) == (Kind.START_BATCH, 2)


def test_fractional_delay() -> None:
    s = snap(completed=1, batch_finished_at=NOW, batch_delay_minutes=0.5)
    assert decide(s, NOW + timedelta(seconds=29)).kind == Kind.WAIT
    assert decide(s, NOW + timedelta(seconds=30)).kind == Kind.START_BATCH


def test_first_observation_of_a_done_batch_stamps_its_finish_time() -> None:
    d = decide(snap(completed=2, batch_delay_minutes=5), NOW)
    assert (d.kind, d.batch_finished_at, d.at) == (Kind.WAIT, NOW, NOW + timedelta(minutes=5))


def test_after_resume_the_stored_next_batch_time_wins() -> None:
    s = snap(status=D.RUNNING, completed=2, batch_finished_at=NOW - timedelta(hours=1), batch_delay_minutes=5,
             next_batch_at=NOW + timedelta(minutes=1))
    assert decide(s, NOW).kind == Kind.WAIT
    assert decide(s, NOW + timedelta(minutes=1)).kind == Kind.START_BATCH


def test_last_batch_done_finishes_completed() -> None:
    d = decide(snap(current_batch=3, completed=9, failed=1), NOW)
    assert (d.kind, d.status) == (Kind.FINISH, D.COMPLETED)


def test_every_device_failed_finishes_failed() -> None:
    d = decide(snap(current_batch=3, failed=4), NOW)
    assert (d.kind, d.status) == (Kind.FINISH, D.FAILED)


# --- "Deployment auto-paused unexpectedly" -------------------------------------------------------

def test_count_threshold_pauses_between_batches() -> None:
    d = decide(snap(completed=16, failed=4, pause_on_failure_count=3), NOW)
    assert (d.kind, d.status) == (Kind.PAUSE, D.PAUSED)
    assert "pauseOnFailureCount=3" in d.reason and "after batch 1" in d.reason


def test_percent_threshold_is_over_the_total_target_devices() -> None:
    # Seed 004: "percentage of total target devices". 1000 targets, first batch of 10 with 5
    # failures: 0.5% of the targets, so a 20% threshold does not pause; 0.5% does.
    d = decide(snap(total=1000, total_batches=100, completed=5, failed=5, pause_on_failure_percent=20), NOW)
    assert d.kind == Kind.START_BATCH
    d = decide(snap(total=1000, total_batches=100, completed=5, failed=5, pause_on_failure_percent=0.5), NOW)
    assert d.kind == Kind.PAUSE and "0.5% of the 1000 target devices failed" in d.reason


def test_a_manual_pause_keeps_a_crossed_threshold_visible() -> None:
    d = decide(snap(status=D.PAUSED, completed=6, failed=4, pause_on_failure_count=3), NOW)
    assert d.kind == Kind.PAUSE and d.status is None and "auto-pause due after batch 1" in d.reason


def test_threshold_is_not_checked_while_the_batch_is_still_running() -> None:
    d = decide(snap(open_records=1, downloading=1, failed=5, pause_on_failure_count=1), NOW)
    assert d.kind == Kind.NONE and d.status is None


def test_below_threshold_continues() -> None:
    d = decide(snap(completed=9, failed=1, pause_on_failure_count=3, pause_on_failure_percent=20), NOW)
    assert d.kind == Kind.START_BATCH


def test_thresholds_re_arm_after_resume() -> None:
    # The worked example of docs/deployments-rules.md: paused at 4 failures, resumed (baselines 4, 20).
    resumed = snap(status=D.RUNNING, current_batch=2, total_batches=10, completed=16, failed=4,
                   failure_baseline=4, pause_on_failure_count=3, pause_on_failure_percent=20,
                   batch_finished_at=NOW, next_batch_at=NOW)
    assert decide(resumed, NOW).kind == Kind.START_BATCH
    batch3 = replace(resumed, current_batch=3, completed=25, failed=5, batch_finished_at=None, next_batch_at=None)
    assert decide(batch3, NOW).kind == Kind.START_BATCH
    batch4 = replace(batch3, current_batch=4, completed=33, failed=7)
    d = decide(batch4, NOW)
    assert d.kind == Kind.PAUSE and "3 devices failed since the last resume" in d.reason


def test_threshold_crossed_on_the_last_batch_fails_the_deployment() -> None:
    d = decide(snap(current_batch=3, completed=7, failed=3, pause_on_failure_count=3), NOW)
    assert (d.kind, d.status) == (Kind.FINISH, D.FAILED) and "failure threshold exceeded" in d.reason


def test_paused_never_starts_a_batch() -> None:
    for s in (snap(status=D.PAUSED, current_batch=0),
              snap(status=D.PAUSED, completed=3),
              snap(status=D.PAUSED, completed=3, batch_finished_at=NOW - timedelta(days=1)),
              snap(status=D.PAUSED, open_records=2, downloading=2)):
        d = decide(s, NOW + timedelta(days=30))
        assert d.kind == Kind.NONE and d.status is None


def test_last_batch_finishing_while_paused_finishes_the_deployment() -> None:
    d = decide(snap(status=D.PAUSED, current_batch=3, completed=3), NOW)
    assert (d.kind, d.status) == (Kind.FINISH, D.COMPLETED)


@pytest.mark.parametrize("status", [D.COMPLETED, D.FAILED, D.CANCELLED, D.ROLLBACK])
def test_finished_deployments_are_left_alone(status: D) -> None:
    assert decide(snap(status=status, current_batch=1, completed=1), NOW).kind == Kind.NONE


def test_resume_is_only_from_paused() -> None:
    assert check_action("resume", D.PAUSED) == D.RUNNING
    for status in (D.DOWNLOADING, D.RUNNING, D.COMPLETED, D.CANCELLED):
        with pytest.raises(Conflict, match="only a paused deployment can be resumed"):
            check_action("resume", status)


# --- "A device was skipped but I expected it to receive the command" ---------------------------

def test_skipped_devices_finish_a_batch_without_counting_as_failures() -> None:
    # A batch of 4 where every device was offline or outside its window: terminal, 0 failed.
    d = decide(snap(completed=0, failed=0, pause_on_failure_count=1, pause_on_failure_percent=1), NOW)
    assert d.kind == Kind.START_BATCH
    d = decide(snap(current_batch=3, completed=0, failed=0), NOW)
    assert (d.kind, d.status) == (Kind.FINISH, D.COMPLETED)


def test_skipped_and_failed_devices_can_be_retried_in_live_or_finished_deployments() -> None:
    for status in (D.DOWNLOADING, D.INSTALLING, D.RUNNING, D.PAUSED, D.COMPLETED, D.FAILED):
        check_action("retry_device", status)
    for status in (D.DRAFT, D.PENDING, D.CANCELLED, D.ROLLBACK):
        with pytest.raises(Conflict):
            check_action("retry_device", status)


# --- "A device keeps failing even after retries" -------------------------------------------------

def test_a_failed_record_waiting_for_its_retry_keeps_the_batch_open() -> None:
    # open_records counts the pending-with-backoff record: no next batch, no threshold check yet.
    d = decide(snap(open_records=1, completed=3, failed=3, pause_on_failure_count=1), NOW)
    assert d.kind == Kind.NONE


def test_retries_exhausted() -> None:
    assert can_auto_retry(0, 3) and can_auto_retry(2, 3)
    assert not can_auto_retry(3, 3)
    assert not can_auto_retry(0, 0)


# --- "Cannot edit or delete a deployment" ---------------------------------------------------------

@pytest.mark.parametrize("status", [s for s in D if s != D.DRAFT])
@pytest.mark.parametrize("action", ["update", "delete", "initialize"])
def test_config_is_locked_after_initialize(status: D, action: str) -> None:
    with pytest.raises(Conflict) as exc:
        check_action(action, status)
    assert exc.value.details["status"] == status
    if action != "initialize":
        assert "only draft deployments can be changed" in exc.value.message


def test_draft_can_be_edited() -> None:
    assert check_action("update", D.DRAFT) == D.DRAFT
    assert check_action("delete", D.DRAFT) is None
