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
- Finished: every record terminal. failed = a threshold crossed at the end, or no device
  completed and at least one failed; else completed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

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


class Kind(StrEnum):
    NONE = "none"
    START_BATCH = "start_batch"
    WAIT = "wait"
    PAUSE = "pause"
    FINISH = "finish"


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
        pause_on_failure_percent=s.pause_on_failure_percent)


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
        if reason:
            return Decision(Kind.FINISH, status=DeploymentStatus.FAILED, reason=f"failure threshold exceeded: {reason}",
                            batch_finished_at=finished_at)
        if s.failed > 0 and s.completed == 0:
            return Decision(Kind.FINISH, status=DeploymentStatus.FAILED, reason="every dispatched device failed",
                            batch_finished_at=finished_at)
        return Decision(Kind.FINISH, status=DeploymentStatus.COMPLETED, batch_finished_at=finished_at)
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
        return Decision(Kind.START_BATCH, status=DeploymentStatus.DOWNLOADING, batch=s.current_batch + 1,
                        batch_finished_at=finished_at)
    return Decision(Kind.WAIT, status=DeploymentStatus.RUNNING if s.status in ACTIVE else None, at=due,
                    batch_finished_at=finished_at)
