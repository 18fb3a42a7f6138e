"""What the engine does next with one deployment, decided from a snapshot of stored state.

Pure: the engine reads a `Snapshot` in a transaction, calls `decide`, and applies the returned
`Decision` in the same transaction. Because the decision depends only on stored state and the
time given, a coordinator killed at any moment decides the same thing again after a restart.

Rules (seed 004 and docs/deployments-rules.md):
- A batch is done when every record in it (and in every earlier batch) is terminal; failed
  records waiting for a retry are not terminal.
- Thresholds are checked when a batch is done, before the next one starts; crossing one pauses
  the deployment between batches. At the end, a crossed threshold makes the deployment failed.
  A deployment paused by hand whose batch ends with a threshold crossed keeps the reason, so a
  resume is not blind to it.
- Batch N+1 starts `batchDelayMinutes` after batch N is done (after a resume: no earlier than
  the resume).
- Rollout strategies (docs/deployments-rules.md, "Rollout strategies"): a deployment started
  with `startAt` waits for it before batch 1 (`next_batch_at`); `successGatePercent` is checked
  when the next batch is due (after the bake time) and pauses if the finished batch's completed
  share is below it (a resume after the batch is done passes the gate); `onFailureThreshold`
  "cancel" / "rollback" replace the pause (and, for rollback, the final failure) by that action.
- Finished: every record terminal. failed = a threshold crossed at the end, or no device
  completed and at least one failed; else completed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction

from coordinator.domain.states import ACTIVE, LIVE, DeploymentStatus
from coordinator.domain.thresholds import threshold_crossed


@dataclass(frozen=True)
class Snapshot:
    status: str
    current_batch: int
    total_batches: int
    total: int
    """Target devices resolved at initialize (the percent threshold's denominator)."""
    open_records: int
    """Non-terminal records in batches up to the current one."""
    downloading: int
    installing: int
    completed: int
    failed: int
    failure_baseline: int
    batch_finished_at: datetime | None
    next_batch_at: datetime | None
    batch_delay_minutes: float
    pause_on_failure_count: int | None
    pause_on_failure_percent: float | None
    late_waiting: int = 0
    """Open records (counted in open_records) waiting for their offline device to connect
    (offlineDevices "wait"): a batch is done without them; the deployment is not."""
    # --- rollout strategies (defaults: seed 004) ---
    finished_baseline: int = 0
    """Completed + failed at the last resume (the "finished" basis and the sample re-arm)."""
    failure_basis: str = "targets"
    min_finished_for_percent: int = 0
    on_failure_threshold: str = "pause"
    """pause | cancel | rollback: what a crossed threshold does."""
    success_gate_percent: float | None = None
    batch_completed: int = 0
    """Completed records of the current batch (read only when a success gate is set)."""
    batch_devices: int = 0
    """Records planned in the current batch."""
    gate_passed: bool = False
    """An operator resumed after the current batch was done: its success gate is passed."""


class Kind(StrEnum):
    NONE = "none"
    START_BATCH = "start_batch"
    WAIT = "wait"
    PAUSE = "pause"
    FINISH = "finish"
    CANCEL = "cancel"
    """onFailureThreshold "cancel": the rest of the deployment is cancelled."""
    ROLLBACK = "rollback"
    """onFailureThreshold "rollback": cancel the rest and roll back the devices that completed."""


@dataclass(frozen=True)
class Decision:
    kind: Kind
    status: str | None = None
    """The deployment status to set (None: leave it)."""
    batch: int = 0
    at: datetime | None = None
    """For WAIT: when the next batch is due."""
    reason: str = ""
    batch_finished_at: datetime | None = None


def crossed(s: Snapshot) -> str | None:
    return threshold_crossed(
        failed=s.failed, total=s.total, failure_baseline=s.failure_baseline,
        pause_on_failure_count=s.pause_on_failure_count,
        pause_on_failure_percent=s.pause_on_failure_percent,
        failure_basis=s.failure_basis, finished=s.completed + s.failed, finished_baseline=s.finished_baseline,
        min_finished_for_percent=s.min_finished_for_percent)


def success_gate_failed(s: Snapshot) -> str | None:
    """The reason the finished batch misses `successGatePercent`, or None (no gate, or met)."""
    gate = s.success_gate_percent
    if gate is None or s.gate_passed or s.batch_devices <= 0:
        return None
    if s.batch_completed * 100 >= _exact_gate(gate) * s.batch_devices:
        return None
    share = s.batch_completed * 100 / s.batch_devices
    return (f"success gate: {s.batch_completed} of the {s.batch_devices} devices of batch {s.current_batch} "
            f"completed ({share:.3g}%), below successGatePercent={gate:g}")


def _exact_gate(value: float) -> Fraction:
    return Fraction(repr(float(value)))


def _threshold_action(s: Snapshot, reason: str, finished_at: datetime) -> Decision | None:
    """onFailureThreshold cancel / rollback (None: "pause", the seed's behaviour)."""
    if s.on_failure_threshold == "cancel":
        return Decision(Kind.CANCEL, status=DeploymentStatus.CANCELLED,
                        reason=f"cancelled after batch {s.current_batch} (onFailureThreshold=cancel): {reason}",
                        batch_finished_at=finished_at)
    if s.on_failure_threshold == "rollback":
        return Decision(Kind.ROLLBACK, status=DeploymentStatus.ROLLBACK,
                        reason=f"rolled back after batch {s.current_batch} (onFailureThreshold=rollback): {reason}",
                        batch_finished_at=finished_at)
    return None


def _in_batch_status(s: Snapshot) -> str:
    if s.installing:
        return DeploymentStatus.INSTALLING
    if s.downloading:
        return DeploymentStatus.DOWNLOADING
    return DeploymentStatus.RUNNING


def decide(s: Snapshot, now: datetime) -> Decision:
    if s.status not in LIVE:
        return Decision(Kind.NONE)
    paused = s.status == DeploymentStatus.PAUSED
    if s.current_batch == 0:
        if paused:
            return Decision(Kind.NONE)
        if s.total_batches == 0:
            return Decision(Kind.FINISH, status=DeploymentStatus.COMPLETED, reason="no target devices")
        if s.next_batch_at is not None and now < s.next_batch_at:  # rolloutConfig.startAt
            return Decision(Kind.WAIT, status=DeploymentStatus.RUNNING if s.status in ACTIVE else None,
                            at=s.next_batch_at)
        return Decision(Kind.START_BATCH, status=DeploymentStatus.DOWNLOADING, batch=1)
    if s.open_records > s.late_waiting:
        if paused:
            return Decision(Kind.NONE)
        status = _in_batch_status(s)
        return Decision(Kind.NONE, status=status if status != s.status else None)
    if s.late_waiting and s.current_batch >= s.total_batches:
        # The last batch is done but late arrivers may still connect: running until their wait ends.
        if paused or s.status == DeploymentStatus.RUNNING:
            return Decision(Kind.NONE)
        return Decision(Kind.NONE, status=DeploymentStatus.RUNNING)

    finished_at = s.batch_finished_at or now
    reason = crossed(s)
    if s.current_batch >= s.total_batches:
        if reason and s.on_failure_threshold == "rollback":
            return _threshold_action(s, reason, finished_at) or Decision(Kind.NONE)
        if reason:
            return Decision(Kind.FINISH, status=DeploymentStatus.FAILED, reason=f"failure threshold exceeded: {reason}",
                            batch_finished_at=finished_at)
        if s.failed > 0 and s.completed == 0:
            return Decision(Kind.FINISH, status=DeploymentStatus.FAILED, reason="every dispatched device failed",
                            batch_finished_at=finished_at)
        return Decision(Kind.FINISH, status=DeploymentStatus.COMPLETED, batch_finished_at=finished_at)
    if reason and (action := _threshold_action(s, reason, finished_at)) is not None:
        return action  # cancel / rollback act also when paused by hand
    if paused:
        if reason:  # paused by hand, and the batch ended past a threshold: say so
            return Decision(Kind.PAUSE, reason=f"auto-pause due after batch {s.current_batch}: {reason}",
                            batch_finished_at=finished_at)
        return Decision(Kind.NONE, batch_finished_at=finished_at)
    if reason:
        return Decision(Kind.PAUSE, status=DeploymentStatus.PAUSED,
                        reason=f"auto-paused after batch {s.current_batch}: {reason}", batch_finished_at=finished_at)
    due = s.next_batch_at or finished_at + timedelta(minutes=s.batch_delay_minutes)
    if now >= due:
        gate = success_gate_failed(s)  # checked after the bake time (batchDelayMinutes)
        if gate:
            return Decision(Kind.PAUSE, status=DeploymentStatus.PAUSED,
                            reason=f"auto-paused after batch {s.current_batch}: {gate}", batch_finished_at=finished_at)
        return Decision(Kind.START_BATCH, status=DeploymentStatus.DOWNLOADING, batch=s.current_batch + 1,
                        batch_finished_at=finished_at)
    return Decision(Kind.WAIT, status=DeploymentStatus.RUNNING if s.status in ACTIVE else None, at=due,
                    batch_finished_at=finished_at)
