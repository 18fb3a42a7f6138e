"""The rollout engine's units of work, each run inside one transaction.

`reconcile` is the whole engine for one deployment: it expires install deadlines, dispatches
due records, recounts progress, asks the pure `domain.rollout.decide` what comes next, and
applies that. It reads everything it needs from the store, so running it again after a crash
(or twice concurrently: the deployment row is locked) is safe.

`apply_reports` folds a tick's worth of agent job statuses into the store in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from common.ids import new_id
from common.maintenance import in_window
from coordinator.domain.backoff import backoff_minutes, can_auto_retry
from coordinator.domain.rollout import Decision, Kind, Snapshot, decide
from coordinator.domain.states import LIVE, RECORD_TERMINAL, record_allowed, record_move
from coordinator.domain.states import DeploymentStatus as D
from coordinator.domain.states import RecordStatus as R
from coordinator.store import models as m

JOB_TERMINAL = frozenset({"completed", "failed", "skipped", "cancelled"})
# Which record move (domain/states.py) an agent's job status asks for. "downloading" moves
# nothing: a dispatched record is already downloading.
_REPORT_MOVES = {"installing": "installing", "completed": "complete", "failed": "fail",
                 "skipped": "agent_skip", "cancelled": "agent_skip"}
_RUNNING, _ = record_move("fail")
_DISPATCH_FROM, _DISPATCH_TO = record_move("dispatch")
_SKIP_FROM, _SKIP_TO = record_move("skip")
# Dispatch and skip are written with executemany, which cannot take IN (...): one source status.
assert len(_DISPATCH_FROM) == 1 and len(_SKIP_FROM) == 1
_JOB_RANK = {"queued": 0, "received": 1, "downloading": 2, "installing": 3,
             "completed": 4, "failed": 4, "skipped": 4, "cancelled": 4}
OUTPUT_LIMIT = 64 * 1024


@dataclass
class Dispatch:
    device_id: str
    job_id: str
    deployment_id: str
    attempt: int
    type: str
    payload: dict[str, Any]
    respect_windows: bool
    timeout_seconds: float
    rollback: bool


@dataclass
class ReconcileResult:
    deployment_id: str
    status: str = ""
    dispatched: list[Dispatch] = field(default_factory=list)
    withdrawn: list[tuple[str, str]] = field(default_factory=list)
    """(device id, job id) of timed-out jobs: a device that has not started one should not."""
    next_due: datetime | None = None
    changed: bool = False


def _rollout(d: m.Deployment) -> dict[str, Any]:
    return d.rollout_config or {}


def install_timeout(d: m.Deployment, default_minutes: float) -> timedelta:
    minutes = _rollout(d).get("installTimeoutMinutes") or default_minutes
    return timedelta(minutes=float(minutes))


def recount(s: Session, d: m.Deployment) -> None:
    """Progress counters straight from the records (counters always equal the records)."""
    counts = dict(s.execute(select(m.DeploymentDevice.status, func.count())
                            .where(m.DeploymentDevice.deployment_id == d.id)
                            .group_by(m.DeploymentDevice.status)).all())
    values = {
        "n_pending": counts.get(R.PENDING, 0),
        "n_running": counts.get(R.DOWNLOADING, 0) + counts.get(R.INSTALLING, 0),
        "n_completed": counts.get(R.COMPLETED, 0),
        "n_failed": counts.get(R.FAILED, 0),
        "n_skipped": counts.get(R.SKIPPED, 0),
    }
    if any(getattr(d, k) != v for k, v in values.items()):
        s.execute(update(m.Deployment).where(m.Deployment.id == d.id).values(**values)
                  .execution_options(synchronize_session=False))
        for k, v in values.items():
            setattr(d, k, v)


def _fail_attempt_values(d: m.Deployment, retry_count: int, reason: str, now: datetime) -> dict[str, Any]:
    """What a failed attempt does to a record: retry later if retries are left, else failed.

    Only a live deployment retries: in a cancelled or rolled-back one nothing will ever dispatch
    the retry, so the record would wait in pending forever."""
    retry = _rollout(d).get("retryConfig") or {}
    max_retries = int(retry.get("maxRetries", 0))
    if d.status in LIVE and can_auto_retry(retry_count, max_retries):
        wait = backoff_minutes(retry.get("backoffMinutes") or [], retry_count + 1)
        return {"status": R.PENDING, "retry_count": retry_count + 1, "due_at": now + timedelta(minutes=wait),
                "error": reason, "updated_at": now}
    return {"status": R.FAILED, "error": reason, "due_at": None, "finished_at": now, "updated_at": now}


def _expire(s: Session, d: m.Deployment, now: datetime, withdrawn: list[tuple[str, str]] | None = None) -> bool:
    """Fail records whose install deadline passed without a final report (their jobs are added
    to `withdrawn`, so the agent drops them if it has not started: a retry may follow)."""
    overdue = list(s.scalars(select(m.DeploymentDevice).where(
        m.DeploymentDevice.deployment_id == d.id,
        m.DeploymentDevice.status.in_(_RUNNING),
        m.DeploymentDevice.due_at <= now)))
    for r in overdue:
        minutes = _rollout(d).get("installTimeoutMinutes")
        reason = f"install timeout: no result from the device within {minutes:g} minutes" if minutes else "install timeout"
        values = _fail_attempt_values(d, r.retry_count, reason, now)
        res = s.execute(update(m.DeploymentDevice)
                        .where(m.DeploymentDevice.id == r.id, m.DeploymentDevice.job_id == r.job_id,
                               m.DeploymentDevice.status.in_(_RUNNING))
                        .values(**values).execution_options(synchronize_session=False))
        if res.rowcount:  # type: ignore[attr-defined]
            s.execute(update(m.Job).where(m.Job.id == r.job_id, m.Job.state.not_in(JOB_TERMINAL))
                      .values(state="failed", reason=reason, updated_at=now))
            if withdrawn is not None and r.job_id:
                withdrawn.append((r.device_id, r.job_id))
    return bool(overdue)


def _dispatch(s: Session, d: m.Deployment, now: datetime, default_timeout_min: float) -> list[Dispatch]:
    """Dispatch every due pending record up to the current batch (set-based)."""
    rows = s.execute(
        select(m.DeploymentDevice.id, m.DeploymentDevice.device_id, m.DeploymentDevice.attempts,
               m.Device.online, m.Device.maintenance_windows)
        .join(m.Device, m.Device.id == m.DeploymentDevice.device_id)
        .where(m.DeploymentDevice.deployment_id == d.id, m.DeploymentDevice.status == R.PENDING,
               m.DeploymentDevice.batch_number <= d.current_batch,
               (m.DeploymentDevice.due_at.is_(None)) | (m.DeploymentDevice.due_at <= now))
        .order_by(m.DeploymentDevice.position)).all()
    if not rows:
        return []
    respect = bool(_rollout(d).get("respectMaintenanceWindows"))
    timeout = install_timeout(d, default_timeout_min)
    skips: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    out: list[Dispatch] = []
    for rec_id, device_id, attempts, online, windows in rows:
        if not online:
            skips.append({"b_id": rec_id, "reason": "offline"})
            continue
        if respect and windows and not _in_window_safe(windows, now):
            skips.append({"b_id": rec_id, "reason": "outside_maintenance_window"})
            continue
        job_id = new_id()
        jobs.append({"id": job_id, "deployment_device_id": rec_id, "deployment_id": d.id, "device_id": device_id,
                     "attempt": attempts + 1, "state": "queued", "output": "", "reason": "", "created_at": now,
                     "updated_at": now})
        runs.append({"b_id": rec_id, "job_id": job_id, "attempts": attempts + 1, "due_at": now + timeout})
        out.append(Dispatch(device_id=device_id, job_id=job_id, deployment_id=d.id, attempt=attempts + 1, type=d.type,
                            payload=d.job_payload, respect_windows=respect, timeout_seconds=timeout.total_seconds(),
                            rollback=d.rollback_of is not None))
    from sqlalchemy import bindparam

    tbl: Any = m.DeploymentDevice.__table__
    if skips:
        s.execute(tbl.update().where(tbl.c.id == bindparam("b_id"), tbl.c.status == _SKIP_FROM[0])
                  .values(status=_SKIP_TO, skip_reason=bindparam("reason"), due_at=None, finished_at=now,
                          updated_at=now), skips)
    if jobs:
        s.execute(insert(m.Job), jobs)
        s.execute(tbl.update().where(tbl.c.id == bindparam("b_id"), tbl.c.status == _DISPATCH_FROM[0])
                  .values(status=_DISPATCH_TO, job_id=bindparam("job_id"), attempts=bindparam("attempts"),
                          due_at=bindparam("due_at"), started_at=now, exit_code=None, output="", updated_at=now), runs)
    return out


def _in_window_safe(windows: Sequence[str], now: datetime) -> bool:
    try:
        return in_window(list(windows), now)
    except ValueError:
        return True  # unparseable windows were rejected at hello; never block a device on them


def snapshot(s: Session, d: m.Deployment) -> Snapshot:
    open_counts = dict(s.execute(
        select(m.DeploymentDevice.status, func.count())
        .where(m.DeploymentDevice.deployment_id == d.id, m.DeploymentDevice.batch_number <= d.current_batch,
               m.DeploymentDevice.status.not_in([t.value for t in RECORD_TERMINAL]))
        .group_by(m.DeploymentDevice.status)).all())
    staggered = _rollout(d).get("staggered") or {}
    return Snapshot(
        status=d.status, current_batch=d.current_batch, total_batches=d.total_batches,
        open_records=sum(open_counts.values()), downloading=open_counts.get(R.DOWNLOADING, 0),
        installing=open_counts.get(R.INSTALLING, 0), completed=d.n_completed, failed=d.n_failed,
        failure_baseline=d.failure_baseline, finished_baseline=d.finished_baseline,
        batch_finished_at=d.batch_finished_at, next_batch_at=d.next_batch_at,
        batch_delay_minutes=float(staggered.get("batchDelayMinutes") or 0),
        pause_on_failure_count=staggered.get("pauseOnFailureCount"),
        pause_on_failure_percent=staggered.get("pauseOnFailurePercent"))


def _apply(s: Session, d: m.Deployment, decision: Decision, now: datetime) -> None:
    from coordinator.service.deployments import transition

    fields: dict[str, Any] = {}
    if decision.batch_finished_at is not None and d.batch_finished_at is None:
        fields["batch_finished_at"] = decision.batch_finished_at
    if decision.kind == Kind.START_BATCH:
        transition(s, d, "dispatch_batch", now, "engine", f"batch {decision.batch} of {d.total_batches} started",
                   current_batch=decision.batch, batch_finished_at=None, next_batch_at=None)
    elif decision.kind == Kind.PAUSE:
        transition(s, d, "auto_pause", now, "engine", decision.reason, status_reason=decision.reason,
                   next_batch_at=None, **fields)
    elif decision.kind == Kind.FINISH:
        action = "complete" if decision.status == D.COMPLETED else "fail"
        if d.status == D.PAUSED:  # the last batch finished while paused by hand
            transition(s, d, "resume", now, "engine", "last batch finished while paused")
        transition(s, d, action, now, "engine", decision.reason or "every device record is terminal",
                   status_reason=decision.reason, completed_at=now, next_batch_at=None, **fields)
    elif decision.kind == Kind.WAIT:
        if decision.status and decision.status != d.status:
            transition(s, d, "between_batches", now, "engine", f"batch {d.current_batch} done; next at {decision.at}",
                       next_batch_at=decision.at, **fields)
        elif d.next_batch_at != decision.at or fields:
            s.execute(update(m.Deployment).where(m.Deployment.id == d.id)
                      .values(next_batch_at=decision.at, **fields).execution_options(synchronize_session=False))
            s.refresh(d)
    else:
        if decision.status and decision.status != d.status:
            action = "installing" if decision.status == D.INSTALLING else (
                "dispatch_batch" if decision.status == D.DOWNLOADING else "between_batches")
            transition(s, d, action, now, "engine", **fields)
        elif fields:
            s.execute(update(m.Deployment).where(m.Deployment.id == d.id).values(**fields)
                      .execution_options(synchronize_session=False))
            s.refresh(d)


def reconcile(s: Session, deployment_id: str, now: datetime, default_timeout_min: float = 30.0) -> ReconcileResult:
    d = s.scalar(select(m.Deployment).where(m.Deployment.id == deployment_id).with_for_update())
    result = ReconcileResult(deployment_id=deployment_id)
    if d is None:
        return result
    result.status = d.status
    if d.status not in LIVE:
        # A cancelled or rolled-back deployment dispatches nothing, but devices still running
        # its jobs must reach a terminal state: their install deadline is still enforced.
        if d.status in (D.CANCELLED, D.ROLLBACK) and _expire(s, d, now, result.withdrawn):
            recount(s, d)
            result.changed = True
        result.next_due = _next_running_deadline(s, d)
        return result
    version = d.version
    for _ in range(d.total_batches + 2):  # each pass may start one batch; bounded
        changed = _expire(s, d, now, result.withdrawn)
        if d.status != D.PAUSED and d.current_batch > 0:
            dispatched = _dispatch(s, d, now, default_timeout_min)
            result.dispatched.extend(dispatched)
            changed = changed or bool(dispatched)
        recount(s, d)
        decision = decide(snapshot(s, d), now)
        _apply(s, d, decision, now)
        if decision.kind != Kind.START_BATCH:
            break
    recount(s, d)
    result.status = d.status
    result.changed = d.version != version or bool(result.dispatched)
    if d.status == D.PAUSED:
        # Paused: nothing is dispatched, so only install deadlines of running devices are due
        # (a passed batch or retry time would otherwise wake the engine again at once, forever).
        result.next_due = _next_running_deadline(s, d)
    elif d.status in LIVE:
        due = s.scalar(select(func.min(m.DeploymentDevice.due_at)).where(
            m.DeploymentDevice.deployment_id == d.id, m.DeploymentDevice.batch_number <= d.current_batch,
            m.DeploymentDevice.status.in_((R.PENDING, R.DOWNLOADING, R.INSTALLING))))
        candidates = [t for t in (due, d.next_batch_at) if t is not None]
        result.next_due = min(candidates) if candidates else None
    return result


# --- agent reports ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Report:
    device_id: str
    job_id: str
    state: str
    exit_code: int | None = None
    output: str = ""
    reason: str = ""


@dataclass
class ReportResult:
    acks: list[tuple[str, str, str]] = field(default_factory=list)  # (device id, job id, state)
    touched: set[str] = field(default_factory=set)


def _chunks(ids: Iterable[str], size: int = 5000) -> Iterator[list[str]]:
    items = list(ids)
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _bulk_update(s: Session, table: Any, rows: dict[str, dict[str, Any]]) -> None:
    """UPDATE … WHERE id = ? for many rows: one executemany per distinct set of columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id, values in rows.items():
        groups.setdefault(tuple(sorted(values)), []).append({"b_id": row_id, **{f"v_{k}": v for k, v in values.items()}})
    for keys, params in groups.items():
        s.execute(table.update().where(table.c.id == bindparam("b_id")).values({k: bindparam(f"v_{k}") for k in keys}),
                  params)


def apply_reports(s: Session, reports: Iterable[Report], now: datetime) -> ReportResult:
    """Fold job statuses into jobs and records, in one transaction; stale ones change nothing.

    Set-based: the jobs and records are read as plain rows (no ORM objects: at thousands of
    reports per tick, identity-map bookkeeping and unit-of-work flushes were most of the cost),
    folded in memory, and written back with one executemany per kind of change."""
    out = ReportResult()
    reports = list(reports)
    if not reports:
        return out
    jt: Any = m.Job.__table__
    rt: Any = m.DeploymentDevice.__table__
    jobs: dict[str, dict[str, Any]] = {}
    for chunk in _chunks({r.job_id for r in reports}):
        for row in s.execute(select(jt.c.id, jt.c.device_id, jt.c.deployment_id, jt.c.deployment_device_id,
                                    jt.c.state).where(jt.c.id.in_(chunk))):
            jobs[row.id] = row._asdict()
    dep_ids = sorted({j["deployment_id"] for j in jobs.values()})
    # Lock the deployments in a fixed order (PostgreSQL) so record moves serialize with the engine.
    deps = {d.id: d for d in s.scalars(select(m.Deployment).where(m.Deployment.id.in_(dep_ids))
                                       .order_by(m.Deployment.id).with_for_update())}
    if s.get_bind().dialect.name != "sqlite":
        # Re-read job states under the deployment locks (SQLite's BEGIN IMMEDIATE already
        # serializes): a timeout may have finished a job between the first read and the lock.
        for chunk in _chunks(set(jobs)):
            for row in s.execute(select(jt.c.id, jt.c.state).where(jt.c.id.in_(chunk))):
                jobs[row.id]["state"] = row.state
    records: dict[str, dict[str, Any]] = {}
    for chunk in _chunks({j["deployment_device_id"] for j in jobs.values()}):
        for row in s.execute(select(rt.c.id, rt.c.job_id, rt.c.status, rt.c.retry_count).where(rt.c.id.in_(chunk))):
            records[row.id] = row._asdict()
    job_writes: dict[str, dict[str, Any]] = {}
    record_writes: dict[str, dict[str, Any]] = {}
    for rep in reports:
        job = jobs.get(rep.job_id)
        if job is None or job["device_id"] != rep.device_id:
            continue  # unknown, or another device's job: never trusted
        terminal = rep.state in JOB_TERMINAL
        if job["state"] in JOB_TERMINAL or _JOB_RANK.get(rep.state, -1) <= _JOB_RANK.get(job["state"], 0):
            if terminal and job["state"] in JOB_TERMINAL:
                out.acks.append((rep.device_id, job["id"], job["state"]))
            continue
        job["state"] = rep.state
        jw = job_writes.setdefault(job["id"], {})
        jw.update(state=rep.state, updated_at=now)
        if terminal:
            jw.update(exit_code=rep.exit_code, output=rep.output[-OUTPUT_LIMIT:], reason=rep.reason)
            out.acks.append((rep.device_id, job["id"], rep.state))
        r = records.get(job["deployment_device_id"])
        d = deps.get(job["deployment_id"])
        move = _REPORT_MOVES.get(rep.state)
        if r is None or d is None or r["job_id"] != job["id"] or move is None or not record_allowed(move, r["status"]):
            continue  # a stale attempt (timed out, retried, cancelled): the job is recorded, the record is not moved
        out.touched.add(d.id)
        values: dict[str, Any] = {"updated_at": now}
        if rep.state == "installing":
            values["status"] = R.INSTALLING.value
        elif rep.state == "completed":
            values.update(status=R.COMPLETED.value, exit_code=rep.exit_code, output=rep.output[-OUTPUT_LIMIT:],
                          error="", due_at=None, finished_at=now)
        elif rep.state == "failed":
            values.update(exit_code=rep.exit_code, output=rep.output[-OUTPUT_LIMIT:],
                          **_fail_attempt_values(d, r["retry_count"], rep.reason or "failed", now))
            values["status"] = str(values["status"])
        elif rep.state in ("skipped", "cancelled"):
            values.update(status=R.SKIPPED.value, skip_reason=(rep.reason or rep.state)[:64], due_at=None,
                          finished_at=now)
        r.update(values)
        record_writes.setdefault(r["id"], {}).update(values)
    _bulk_update(s, jt, job_writes)
    _bulk_update(s, rt, record_writes)
    # Counters always equal the records, in the same transaction, whether or not the engine
    # looks at the deployment again (it does not for a cancelled or rolled-back one).
    for dep_id in sorted(out.touched):
        recount(s, deps[dep_id])
    return out


def active_jobs_for_devices(s: Session, device_ids: Sequence[str], default_timeout_min: float = 30.0) -> list[Dispatch]:
    """Every job still due to run on these devices: re-sent when a device (re)connects."""
    if not device_ids:
        return []
    rows = s.execute(
        select(m.Job, m.Deployment).join(m.DeploymentDevice, m.DeploymentDevice.job_id == m.Job.id)
        .join(m.Deployment, m.Deployment.id == m.Job.deployment_id)
        .where(m.Job.device_id.in_(device_ids), m.Job.state.not_in(JOB_TERMINAL),
               m.DeploymentDevice.status.in_((R.DOWNLOADING, R.INSTALLING)),
               m.Deployment.status.in_([s_.value for s_ in LIVE]))).all()
    return [Dispatch(device_id=j.device_id, job_id=j.id, deployment_id=d.id, attempt=j.attempt, type=d.type,
                     payload=d.job_payload, respect_windows=bool(_rollout(d).get("respectMaintenanceWindows")),
                     timeout_seconds=install_timeout(d, default_timeout_min).total_seconds(),
                     rollback=d.rollback_of is not None) for j, d in rows]


def _next_running_deadline(s: Session, d: m.Deployment) -> datetime | None:
    return s.scalar(select(func.min(m.DeploymentDevice.due_at)).where(
        m.DeploymentDevice.deployment_id == d.id,
        m.DeploymentDevice.status.in_((R.DOWNLOADING, R.INSTALLING))))


def live_deployment_ids(s: Session) -> list[str]:
    """Deployments the engine must look after: live ones, and finished ones with devices still running."""
    live = set(s.scalars(select(m.Deployment.id).where(m.Deployment.status.in_([x.value for x in LIVE]))))
    running = set(s.scalars(select(m.DeploymentDevice.deployment_id).distinct().where(
        m.DeploymentDevice.status.in_((R.DOWNLOADING, R.INSTALLING)))))
    return sorted(live | running)
