"""The per-device record machine: typed events in, instructions out. Pure.

Every rule of a deployment's device record lives here, beside the deployment's `decide()`
(domain/rollout.py): when a due record is dispatched, skipped or failed; what an agent's report
does; when a silent device's attempt is failed; what cancel does to a record; when a manual retry
is allowed. The engine (engine/rollout.py) loads the records an event concerns, calls `handle`,
and writes the instructions as guarded, set-based SQL; it never decides.

Vocabulary (docs/deployments-rules.md, "Device records"):
- `runs` counts the attempts that actually ran. An attempt the agent skipped (outside its window)
  or that never reached the device did not run. Retries used are `runs - 1`; `retryCount` (the
  API's field) also counts a retry that is scheduled or on its way: `runs` then.
- A device whose attempt failed counts as failed, also when its retry then cannot be dispatched
  (offline, outside its window, cancelled): such a record ends `failed`, never `skipped`.
- Deadlines measure silence: an attempt is failed only when the device said nothing (no job
  report, no heartbeat) for the install timeout, counted from the later of the dispatch, the
  device's last word and `silence_floor` (the engine's start, once the servers listen, so the
  coordinator's own downtime never counts). A job the device never acknowledged is withdrawn
  instead: the record is skipped (offline) or, for a retry, failed.
- A late final result of the record's current job is accepted while no newer attempt exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from common.errors import Conflict, RetriesExhausted
from common.states import JOB_RAN, JOB_RANK, JOB_TERMINAL, Desired, JobState
from common.states import RecordStatus as R
from coordinator.domain.rollout_config import RolloutConfig
from coordinator.domain.states import RECORD_MOVES, RECORD_RUNNING

OFFLINE = "offline"
OUTSIDE_WINDOW = "outside_maintenance_window"
REASON_LIMIT = 2000


# --- what the machine looks at -----------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    id: str
    status: R
    job_id: str | None = None
    """The record's current (latest) attempt."""
    runs: int = 0
    attempts: int = 0
    error: str = ""
    due_at: datetime | None = None
    manual: bool = False
    """An operator asked for this attempt (dispatched even while the deployment is paused)."""
    wait_until: datetime | None = None
    """offlineDevices "wait": the record, offline when its batch dispatched it, waits for its
    device to connect until then (a late arriver); None: not waiting."""


@dataclass(frozen=True)
class Job:
    id: str
    state: JobState = JobState.QUEUED
    desired: Desired = Desired.RUN
    ran: bool = False
    activity_at: datetime | None = None
    hold_until: datetime | None = None
    """windowPolicy "wait": the device holds the job until its window opens then; silence is
    counted from no earlier than this."""


@dataclass(frozen=True)
class Context:
    config: RolloutConfig
    now: datetime
    live: bool = True
    """The deployment is live (running or paused): a failed attempt may be retried automatically."""
    default_timeout_minutes: float = 30.0
    silence_floor: datetime | None = None
    """Silence is counted from no earlier than this (the engine's start)."""

    @property
    def timeout(self) -> timedelta:
        return self.config.install_timeout(self.default_timeout_minutes)


class Gate(StrEnum):
    """For a rollback's record: may its job go out yet?"""

    OPEN = "open"
    """Not a rollback, or the original change completed on the device."""
    HOLD = "hold"
    """The original attempt is still running: wait for its outcome."""
    CLOSED = "closed"
    """The original change did not complete on the device: nothing to revert."""


# --- events ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Due:
    """A pending record's time has come (its batch started, its retry is due, a manual retry)."""

    online: bool
    in_window: bool = True
    gate: Gate = Gate.OPEN
    paused: bool = False
    """The deployment is paused: only an operator's manual retry goes out (seed 004: "retry a
    small number of devices without resuming the entire deployment")."""
    window_opens_at: datetime | None = None
    """Outside its windows: when the device's next window opens, if within windowWaitMaxHours
    (the engine computes it only for windowPolicy "wait")."""


@dataclass(frozen=True)
class Reported:
    """The device reported a state of one of this record's jobs."""

    job: Job
    state: JobState
    exit_code: int | None = None
    output: str = ""
    reason: str = ""


@dataclass(frozen=True)
class SilenceCheck:
    """A running record's due time passed: has the device been silent for the timeout?"""

    job: Job
    device_last_seen: datetime | None


@dataclass(frozen=True)
class Cancelled:
    """The deployment was cancelled (or rolled back while paused)."""

    job: Job | None
    reason: str = "cancelled"


@dataclass(frozen=True)
class ManualRetry:
    """An operator asked for one more attempt now."""


@dataclass(frozen=True)
class Revoked:
    """The record's device was revoked: it will never report again, so nothing waits for it."""

    job: Job | None


Event = Due | Reported | SilenceCheck | Cancelled | ManualRetry | Revoked


# --- instructions ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Move:
    """Write the record from its current status by `move` (domain/states.py) with `values`."""

    move: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def to(self) -> R:
        return RECORD_MOVES[self.move][1]


@dataclass(frozen=True)
class SetRecord:
    """Write fields of the record without moving it."""

    values: dict[str, Any]


@dataclass(frozen=True)
class CreateJob:
    """Create the next attempt's job (desired run) and deliver it after commit."""

    attempt: int
    hold_until: datetime | None = None
    """windowPolicy "wait": the job is held on the device until its window opens at this time."""


@dataclass(frozen=True)
class UpdateJob:
    job_id: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Withdraw:
    """Store the job as withdrawn and tell its agent (now if connected, else when it connects)."""

    job_id: str
    reason: str


Instruction = Move | SetRecord | CreateJob | UpdateJob | Withdraw


# --- the machine -------------------------------------------------------------------------------

def _clip(text: str) -> str:
    return text[:REASON_LIMIT]


def _failed_attempt(rec: Record, ctx: Context, runs: int, reason: str, extra: dict[str, Any]) -> Move:
    """A failed attempt: retry later if the policy allows and the deployment is live, else failed."""
    values: dict[str, Any] = {"runs": runs, "error": _clip(reason), **extra}
    if ctx.live and ctx.config.retry.may_retry(runs):
        # retryCount shows the retry now scheduled (retry number `runs`).
        return Move("retry_later", {**values, "retry_count": runs,
                                    "due_at": ctx.now + ctx.config.retry.wait_before(runs)})
    return Move("fail", {**values, "due_at": None, "finished_at": ctx.now})


def _not_run(rec: Record, ctx: Context, why: str, *, skip: str, fail: str) -> Move:
    """The attempt cannot run (offline, outside the window, cancelled, never delivered): a record
    with no attempt that ran is skipped; one whose earlier attempt failed stays failed."""
    if rec.runs == 0:
        return Move(skip, {"skip_reason": why[:64], "due_at": None, "manual": False, "finished_at": ctx.now})
    last = f"; last attempt: {rec.error}" if rec.error else ""
    return Move(fail, {"error": _clip(f"retry not run: {why}{last}"), "skip_reason": why[:64], "due_at": None,
                       "manual": False, "finished_at": ctx.now})


def handle(rec: Record, event: Event, ctx: Context) -> list[Instruction]:
    """The instructions `event` gives for `rec`. Raises Conflict / RetriesExhausted for a manual
    retry that is not allowed (the API's 409 / 400)."""
    if isinstance(event, Due):
        return _due(rec, event, ctx)
    if isinstance(event, Reported):
        return _reported(rec, event, ctx)
    if isinstance(event, SilenceCheck):
        return _silence(rec, event, ctx)
    if isinstance(event, Cancelled):
        return _cancelled(rec, event, ctx)
    if isinstance(event, Revoked):
        return _revoked(rec, event, ctx)
    return _manual_retry(rec, ctx)


def _due(rec: Record, ev: Due, ctx: Context) -> list[Instruction]:
    if rec.status != R.PENDING or (ev.paused and not rec.manual):
        return []
    if ev.gate == Gate.HOLD:
        return []
    if ev.gate == Gate.CLOSED:
        return [Move("skip", {"skip_reason": "not completed by the original", "due_at": None, "finished_at": ctx.now})]
    if not ev.online:
        late = _late_arrival_wait(rec, ctx)
        if late is not None:
            return late
        return [_not_waiting(rec, _not_run(rec, ctx, OFFLINE, skip="skip", fail="undeliverable"))]
    if ctx.config.respect_maintenance_windows and not ev.in_window:
        if ctx.config.waits_for_window and ev.window_opens_at is not None:
            return _dispatch(rec, ctx, hold_until=ev.window_opens_at)
        return [_not_waiting(rec, _not_run(rec, ctx, OUTSIDE_WINDOW, skip="skip", fail="undeliverable"))]
    return _dispatch(rec, ctx)


def _dispatch(rec: Record, ctx: Context, hold_until: datetime | None = None) -> list[Instruction]:
    """A new attempt. Held for a window, its silence deadline starts when the window opens."""
    start = hold_until if hold_until is not None and hold_until > ctx.now else ctx.now
    return [CreateJob(attempt=rec.attempts + 1, hold_until=hold_until),
            _not_waiting(rec, Move("dispatch", {"attempts": rec.attempts + 1, "retry_count": rec.runs, "manual": False,
                                                "due_at": start + ctx.timeout, "started_at": ctx.now,
                                                "exit_code": None, "output": "", "skip_reason": ""}))]


def _not_waiting(rec: Record, move: Move) -> Move:
    """A record that leaves pending is no longer a late arriver waiting for its device."""
    if rec.wait_until is None:
        return move
    return Move(move.move, {**move.values, "wait_until": None})


def _late_arrival_wait(rec: Record, ctx: Context) -> list[Instruction] | None:
    """offlineDevices "wait": a device offline when its batch dispatched it keeps its record
    pending until `waitMinutes` after that moment; it gets the job when it connects (the hub
    makes its record due) and is skipped only once the wait is over. Only the first dispatch
    waits: a retry or a manual retry of an offline device is not a late arrival. None: no wait."""
    od = ctx.config.offline_devices
    if not od.waits or rec.attempts > 0 or rec.manual:
        return None
    if rec.wait_until is None:
        until = od.wait_until(ctx.now)
        return [SetRecord({"wait_until": until, "due_at": until})]
    if ctx.now < rec.wait_until:
        return [SetRecord({"due_at": rec.wait_until})]  # woken early, still offline: keep waiting
    return None


def _reported(rec: Record, ev: Reported, ctx: Context) -> list[Instruction]:
    job = ev.job
    if job.state in JOB_TERMINAL or JOB_RANK.get(ev.state, -1) <= JOB_RANK.get(job.state, 0):
        return []  # a duplicate or a stale report: jobs only move forward
    terminal = ev.state in JOB_TERMINAL
    ran_now = ev.state in JOB_RAN and not job.ran
    job_values: dict[str, Any] = {"state": ev.state.value, "activity_at": ctx.now}
    if ran_now:
        job_values["ran"] = True
    if terminal:
        job_values.update(exit_code=ev.exit_code, output=ev.output, reason=_clip(ev.reason))
    out: list[Instruction] = [UpdateJob(job.id, job_values)]
    if rec.job_id != job.id:
        return out  # an older attempt: its job is recorded, the record belongs to a newer one
    runs = rec.runs + (1 if ran_now else 0)
    result = {"exit_code": ev.exit_code, "output": ev.output}
    if rec.status in RECORD_RUNNING:
        if ev.state == JobState.INSTALLING and rec.status == R.DOWNLOADING:
            out.append(Move("installing", {"runs": runs}))
        elif ev.state == JobState.COMPLETED:
            out.append(Move("complete", {"runs": runs, **result, "error": "", "due_at": None, "finished_at": ctx.now}))
        elif ev.state == JobState.FAILED:
            out.append(_failed_attempt(rec, ctx, runs, ev.reason or "failed", result))
        elif ev.state in (JobState.SKIPPED, JobState.CANCELLED):
            why = ev.reason or ev.state.value
            if rec.runs == 0:
                out.append(Move("agent_skip", {"skip_reason": why[:64], "due_at": None, "finished_at": ctx.now}))
            else:
                last = f"; last attempt: {rec.error}" if rec.error else ""
                out.append(Move("fail", {"error": _clip(f"retry not run: {why}{last}"), "due_at": None,
                                         "finished_at": ctx.now}))
        elif runs != rec.runs:
            out.append(SetRecord({"runs": runs}))
        return out
    # A late result: the record already moved on (silence, withdrawal) but no newer attempt exists.
    if ev.state == JobState.COMPLETED and rec.status in RECORD_MOVES["late_complete"][0]:
        out.append(Move("late_complete", {"runs": runs, **result, "error": "", "skip_reason": "", "due_at": None,
                                          "finished_at": ctx.now}))
    elif ev.state == JobState.FAILED and rec.status == R.SKIPPED:
        out.append(Move("late_fail", {"runs": runs, **result, "error": _clip(ev.reason or "failed"),
                                      "finished_at": ctx.now}))
    elif ev.state == JobState.FAILED and rec.status in (R.FAILED, R.PENDING):
        # Pending here means a retry is scheduled (or asked for): retryCount keeps counting it.
        scheduled = {"retry_count": runs} if rec.status == R.PENDING else {}
        out.append(SetRecord({"runs": runs, **result, **scheduled}))
    elif runs != rec.runs:
        out.append(SetRecord({"runs": runs}))
    return out


def silence_deadline(job: Job, device_last_seen: datetime | None, floor: datetime | None,
                     timeout: timedelta) -> datetime | None:
    """When the device will have been silent about `job` for `timeout` (None: no time known)."""
    times = [t for t in (job.activity_at, device_last_seen, floor, job.hold_until) if t is not None]
    return max(times) + timeout if times else None


def _silence(rec: Record, ev: SilenceCheck, ctx: Context) -> list[Instruction]:
    if rec.status not in RECORD_RUNNING or rec.job_id != ev.job.id:
        return []
    deadline = silence_deadline(ev.job, ev.device_last_seen, ctx.silence_floor, ctx.timeout)
    if deadline is not None and deadline > ctx.now:
        return [SetRecord({"due_at": deadline})]
    minutes = ctx.timeout.total_seconds() / 60
    if ev.job.state == JobState.QUEUED:
        # Never acknowledged by the device: it went away right after dispatch.
        why = f"device offline: the job was not delivered within {minutes:g} minutes"
        return [Withdraw(ev.job.id, why), _not_run(rec, ctx, OFFLINE, skip="withdraw_skip", fail="withdraw_fail")]
    reason = f"install timeout: the device said nothing for {minutes:g} minutes"
    runs = rec.runs + (0 if ev.job.ran else 1)  # a silent attempt may have run: count it
    out: list[Instruction] = [Withdraw(ev.job.id, reason)]
    if not ev.job.ran:
        out.append(UpdateJob(ev.job.id, {"ran": True}))
    out.append(_failed_attempt(rec, ctx, runs, reason, {}))
    return out


def _cancelled(rec: Record, ev: Cancelled, ctx: Context) -> list[Instruction]:
    # Seed 004: pending records are skipped; running, completed, failed and skipped ones are not
    # affected. A job the device never acknowledged has not reached it: it is withdrawn and its
    # record treated as pending (it would otherwise run after the cancel, whenever the device
    # came back).
    if rec.status == R.PENDING:
        return [_not_waiting(rec, _not_run(rec, ctx, ev.reason, skip="skip", fail="undeliverable"))]
    if rec.status == R.DOWNLOADING and ev.job is not None and ev.job.state == JobState.QUEUED \
            and rec.job_id == ev.job.id:
        return [Withdraw(ev.job.id, ev.reason), _not_run(rec, ctx, ev.reason, skip="withdraw_skip", fail="withdraw_fail")]
    return []


REVOKED = "device_revoked"


def _revoked(rec: Record, ev: Revoked, ctx: Context) -> list[Instruction]:
    # A revoked device's credential is refused, so it can neither take a job nor report one:
    # its pending record ends now (skipped, or failed after an earlier failed attempt), a job it
    # never acknowledged is withdrawn like a cancelled one, and a running attempt is failed
    # without retry (its outcome can never be known).
    if rec.status == R.PENDING:
        return [_not_waiting(rec, _not_run(rec, ctx, REVOKED, skip="skip", fail="undeliverable"))]
    if rec.status not in RECORD_RUNNING:
        return []
    job = ev.job
    if rec.status == R.DOWNLOADING and job is not None and job.state == JobState.QUEUED and rec.job_id == job.id:
        return [Withdraw(job.id, REVOKED), _not_run(rec, ctx, REVOKED, skip="withdraw_skip", fail="withdraw_fail")]
    out: list[Instruction] = [Withdraw(job.id, REVOKED)] if job is not None else []
    return out + [Move("fail", {"error": "device revoked while the attempt was running: its outcome is unknown",
                                "due_at": None, "finished_at": ctx.now})]


def _manual_retry(rec: Record, ctx: Context) -> list[Instruction]:
    if rec.status == R.PENDING:
        if rec.job_id is None or rec.due_at is None:
            raise Conflict("device record is pending and has not been dispatched yet; it will be when its batch starts",
                           status=rec.status)
        return [Move("retry_now", {"due_at": ctx.now, "manual": True})]  # bring the waiting automatic retry forward
    if rec.status not in (R.FAILED, R.SKIPPED):
        raise Conflict(f"device record is {rec.status}; only failed or skipped devices (or one waiting for its "
                       f"automatic retry) can be retried", status=rec.status)
    retry = ctx.config.retry
    if rec.runs > 0 and not retry.may_retry(rec.runs):
        raise RetriesExhausted(
            f"device has used all {retry.max_retries} retries (retryConfig.maxRetries); no further automatic or "
            f"manual retries are permitted", retry_count=max(0, rec.runs - 1), max_retries=retry.max_retries)
    return [_not_waiting(rec, Move("manual_retry", {"due_at": ctx.now, "manual": True, "retry_count": rec.runs,
                                                    "skip_reason": "", "finished_at": None}))]
