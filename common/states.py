"""The one vocabulary of states, shared by the coordinator, the agent and the CLI.

- `DeploymentStatus`: a deployment (seed 004, "Lifecycle States").
- `RecordStatus`: a device record of a deployment (seed 004, "Per-Device Drill-Down").
- `JobState`: one attempt on one device, as the agent journals and reports it (docs/protocol.md).
- `Desired`: what the coordinator wants the agent to do with a job; stored per job and re-sent
  whenever the device connects.

The legal moves of each live beside their machine: coordinator/domain/states.py (deployments and
records) and agent/journal.py (jobs on the device).
"""

from __future__ import annotations

from enum import StrEnum


class DeploymentStatus(StrEnum):
    DRAFT = "draft"
    """Created; targets and rollout config can still be edited."""
    PENDING = "pending"
    """Initialized: targets resolved, batches planned, records created; waiting for start."""
    DOWNLOADING = "downloading"
    """The current batch is fetching its payload."""
    INSTALLING = "installing"
    """The current batch is applying its payload."""
    RUNNING = "running"
    """Between batches (waiting for batchDelayMinutes), or reopened by a manual retry."""
    PAUSED = "paused"
    """Nothing new is dispatched until resumed; dispatched devices finish."""
    COMPLETED = "completed"
    """Every record terminal, within the failure thresholds."""
    FAILED = "failed"
    """Every record terminal, a threshold crossed at the end (or every device failed)."""
    CANCELLED = "cancelled"
    """Cancelled by an operator: pending records skipped, running ones finish."""
    ROLLBACK = "rollback"
    """Rolled back: a rollback deployment reverts this one's change."""


class RecordStatus(StrEnum):
    PENDING = "pending"
    """Not dispatched yet, or waiting for its automatic retry (then `nextAttemptAt` is set)."""
    DOWNLOADING = "downloading"
    """Dispatched: the job is on its way to the device, queued there, or fetching its payload."""
    INSTALLING = "installing"
    """The device is applying the change."""
    COMPLETED = "completed"
    FAILED = "failed"
    """The last attempt failed and no automatic retry follows."""
    SKIPPED = "skipped"
    """Never ran: offline or outside its window at dispatch, or cancelled before delivery."""


class JobState(StrEnum):
    QUEUED = "queued"
    """Coordinator side only: stored, not yet acknowledged by the agent."""
    RECEIVED = "received"
    """Journaled by the agent, not started: may still run (also after an agent restart)."""
    DOWNLOADING = "downloading"
    """Fetching the artifact. Found at start-up, it means the agent died mid-job."""
    INSTALLING = "installing"
    """The installer is running. Found at start-up, it means the agent died mid-install."""
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Not run: outside every maintenance window."""
    CANCELLED = "cancelled"
    """Dropped after CancelJob (the job was withdrawn), before installing began."""


class Desired(StrEnum):
    RUN = "run"
    """The agent should run the job (unless it already has: it journals every job id)."""
    WITHDRAWN = "withdrawn"
    """The agent should drop the job if it has not started installing."""


JOB_TERMINAL = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.SKIPPED, JobState.CANCELLED})
JOB_RAN = frozenset({JobState.DOWNLOADING, JobState.INSTALLING, JobState.COMPLETED, JobState.FAILED})
"""Reported states that prove the attempt ran (it counts against maxRetries)."""
JOB_RANK = {JobState.QUEUED: 0, JobState.RECEIVED: 1, JobState.DOWNLOADING: 2, JobState.INSTALLING: 3,
            JobState.COMPLETED: 4, JobState.FAILED: 4, JobState.SKIPPED: 4, JobState.CANCELLED: 4}
"""Jobs only move forward: a report of a lower or equal rank changes nothing."""
