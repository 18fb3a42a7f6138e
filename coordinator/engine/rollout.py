"""The rollout engine's units of work, each run inside one transaction.

`reconcile` is the whole engine for one deployment: it feeds the records that are due (a batch
that started, a retry whose backoff ended, a running attempt whose silence check is due) to the
pure record machine (domain/records.py), writes its instructions, asks the pure
`domain.rollout.decide` what the deployment does next, and applies that. Everything it needs is
in the store, so running it again after a crash (or twice concurrently: the deployment row is
locked) is safe. A reconcile that changes nothing reads one row and two index ranges: the
progress counters are kept by the writer, never recounted.

`apply_reports` folds a tick's worth of agent job statuses into the store in one transaction.
`device_jobs` is the desired state of a device's jobs, sent whenever it connects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from common.ids import new_id
from common.maintenance import in_window, next_opening
from common.states import JOB_TERMINAL, Desired, JobState
from coordinator.domain import rate
from coordinator.domain import records as rm
from coordinator.domain.batch_plan import plan_batches
from coordinator.domain.rollout import Decision, Kind, Snapshot, decide
from coordinator.domain.rollout_config import RolloutConfig
from coordinator.domain.states import FINISHED, LIVE, RECORD_RUNNING
from coordinator.domain.states import DeploymentStatus as D
from coordinator.domain.states import RecordStatus as R
from coordinator.engine.writer import Writer
from coordinator.store import models as m
from coordinator.store.inlist import id_in
from coordinator.store.transitions import add_event, mark_due, transition

OUTPUT_LIMIT = 64 * 1024
JOB_TERMINAL_VALUES = sorted(s.value for s in JOB_TERMINAL)


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
    window_wait_max_seconds: float = 0.0
    """windowPolicy "wait": the agent holds the job outside its windows, up to this long."""
    signature: dict[str, Any] | None = None
    """The operator's `{"keyId", "value", "manifest"}` (docs/security.md, "Signed work")."""


@dataclass
class ReconcileResult:
    deployment_id: str
    status: str = ""
    dispatched: list[Dispatch] = field(default_factory=list)
    withdrawn: list[tuple[str, str, str]] = field(default_factory=list)
    """(device id, job id, reason): the agent drops the job if it has not started installing."""
    next_due: datetime | None = None
    changed: bool = False
    also: set[str] = field(default_factory=set)
    """Other deployments to look at (a rollback whose held records were released)."""
    skipped: bool = False
    """Another engine (another replica) holds the deployment's lock: it is doing this work."""


@dataclass(frozen=True)
class EngineParams:
    default_timeout_minutes: float = 30.0
    """Install timeout for deployments that set none (`serve --install-timeout`)."""
    silence_floor: datetime | None = None
    """The engine's start: silence is never counted from earlier (the coordinator's downtime)."""


def _ctx(d: m.Deployment, now: datetime, params: EngineParams) -> rm.Context:
    return rm.Context(config=RolloutConfig.parse(d.rollout_config), now=now, live=d.status in LIVE,
                      default_timeout_minutes=params.default_timeout_minutes, silence_floor=params.silence_floor)


def _dispatch_of(d: m.Deployment, cfg: RolloutConfig, job_id: str, device_id: str, attempt: int,
                 default_timeout_min: float) -> Dispatch:
    return Dispatch(device_id=device_id, job_id=job_id, deployment_id=d.id, attempt=attempt, type=d.type,
                    payload=d.job_payload, respect_windows=cfg.respect_maintenance_windows,
                    timeout_seconds=cfg.install_timeout(default_timeout_min).total_seconds(),
                    rollback=d.rollback_of is not None,
                    window_wait_max_seconds=cfg.window_wait_max.total_seconds() if cfg.waits_for_window else 0.0,
                    signature=d.signature)


# --- counters ------------------------------------------------------------------------------------

def recount(s: Session, d: m.Deployment) -> None:
    """Progress counters straight from the records: a repair and a test oracle, not the hot path
    (the writer keeps the counters by deltas)."""
    counts = dict(s.execute(select(m.DeploymentDevice.status, func.count())
                            .where(m.DeploymentDevice.deployment_id == d.id)
                            .group_by(m.DeploymentDevice.status)).all())
    values = {
        "n_pending": counts.get(R.PENDING, 0),
        "n_running": counts.get(R.DOWNLOADING, 0) + counts.get(R.INSTALLING, 0),
        "n_installing": counts.get(R.INSTALLING, 0),
        "n_completed": counts.get(R.COMPLETED, 0),
        "n_failed": counts.get(R.FAILED, 0),
        "n_skipped": counts.get(R.SKIPPED, 0),
    }
    if any(getattr(d, k) != v for k, v in values.items()):
        s.execute(update(m.Deployment).where(m.Deployment.id == d.id).values(**values)
                  .execution_options(synchronize_session=False))
        for k, v in values.items():
            setattr(d, k, v)


def _planned(s: Session, d: m.Deployment) -> int:
    """Records in batches up to the current one."""
    if d.batch_sizes is not None:
        return sum(int(n) for n in d.batch_sizes[:d.current_batch])
    return s.scalar(select(func.count()).select_from(m.DeploymentDevice).where(
        m.DeploymentDevice.deployment_id == d.id, m.DeploymentDevice.batch_number <= d.current_batch)) or 0


def snapshot(s: Session, d: m.Deployment) -> Snapshot:
    cfg = RolloutConfig.parse(d.rollout_config)
    # Records of later batches are all pending (nothing touches them before their batch starts),
    # so the open records up to the current batch follow from the counters.
    later = d.total - _planned(s, d)
    th = cfg.thresholds
    late = _late_waiting(s, d) if cfg.offline_devices.waits else 0
    return Snapshot(
        status=d.status, current_batch=d.current_batch, total_batches=d.total_batches, total=d.total,
        open_records=d.n_running + max(0, d.n_pending - later), downloading=d.n_running - d.n_installing,
        installing=d.n_installing, completed=d.n_completed, failed=d.n_failed,
        failure_baseline=d.failure_baseline, batch_finished_at=d.batch_finished_at, next_batch_at=d.next_batch_at,
        batch_delay_minutes=th.batch_delay_minutes, pause_on_failure_count=th.pause_on_failure_count,
        pause_on_failure_percent=th.pause_on_failure_percent, late_waiting=late,
        **_strategy_snapshot(s, d, cfg, open_records=d.n_running + max(0, d.n_pending - later)))


def _late_waiting(s: Session, d: m.Deployment) -> int:
    """Pending records waiting for their offline device (offlineDevices "wait"): a batch does not
    wait for them, the deployment's end does. wait_until is cleared whenever a record leaves
    pending, so this is a range of the (deployment_id, wait_until) index over waiting records only."""
    r = m.DeploymentDevice
    return s.scalar(select(func.count()).select_from(r).where(
        r.deployment_id == d.id, r.wait_until.is_not(None), r.status == R.PENDING.value)) or 0


def _strategy_snapshot(s: Session, d: m.Deployment, cfg: RolloutConfig, *, open_records: int) -> dict[str, Any]:
    """The rollout-strategy part of the snapshot: basis, sample, action, success gate."""
    th = cfg.thresholds
    out: dict[str, Any] = {
        "finished_baseline": d.finished_baseline, "failure_basis": th.failure_basis,
        "min_finished_for_percent": th.min_finished_for_percent,
        "on_failure_threshold": _threshold_action(d, cfg),
    }
    gate = th.success_gate_percent
    if gate is not None and 0 < d.current_batch < d.total_batches and open_records == 0:
        # Only when a batch is done and another follows: one indexed count of its completed records.
        out.update(success_gate_percent=gate, gate_passed=d.gate_passed_batch == d.current_batch,
                   batch_devices=int((d.batch_sizes or [])[d.current_batch - 1]) if d.batch_sizes else 0,
                   batch_completed=s.scalar(select(func.count()).select_from(m.DeploymentDevice).where(
                       m.DeploymentDevice.deployment_id == d.id, m.DeploymentDevice.batch_number == d.current_batch,
                       m.DeploymentDevice.status == R.COMPLETED.value)) or 0)
    return out


def _threshold_action(d: m.Deployment, cfg: RolloutConfig) -> str:
    """onFailureThreshold; "rollback" needs a frozen revert payload (and a rollback is never rolled
    back), else the seed's pause."""
    action = cfg.on_failure_threshold
    if action == "rollback" and (d.rollback_of is not None or d.rollback_job_payload is None):
        return "pause"
    return action


# --- due records ---------------------------------------------------------------------------------

def _rec(row: Any) -> rm.Record:
    return rm.Record(id=row.id, status=R(row.status), job_id=row.job_id, runs=row.runs, attempts=row.attempts,
                     error=row.error or "", due_at=row.due_at, manual=bool(row.manual),
                     wait_until=getattr(row, "wait_until", None))


def _job(row: Any) -> rm.Job | None:
    if row.j_id is None:
        return None
    return rm.Job(id=row.j_id, state=JobState(row.j_state), desired=Desired(row.j_desired), ran=bool(row.j_ran),
                  activity_at=row.j_activity_at, hold_until=getattr(row, "j_hold_until", None))


def _in_window_safe(windows: Sequence[str], now: datetime) -> bool:
    if not windows:
        return True
    try:
        return in_window(list(windows), now)
    except ValueError:
        return True  # unparseable windows were rejected at hello; never block a device on them


def _window_opens(ctx: rm.Context, windows: Sequence[str]) -> datetime | None:
    """windowPolicy "wait": when the device's next window opens, if within windowWaitMaxHours."""
    if not ctx.config.waits_for_window:
        return None
    try:
        return next_opening(list(windows), ctx.now, ctx.config.window_wait_max)
    except ValueError:
        return None


def _due_rows(s: Session, d: m.Deployment, now: datetime, *, pending: bool | None = None, after: int = -1,
              limit: int | None = None) -> list[Any]:
    """Due records in plan order; `pending` True / False: only pending / only the others (for the
    rate cap, pending ones page by position after `after`, `limit` at a time)."""
    r, dev, j = m.DeploymentDevice, m.Device, m.Job
    query = (
        select(r.id, r.device_id, r.status, r.job_id, r.runs, r.attempts, r.error, r.due_at, r.manual, r.wait_until,
               r.position,
               dev.online, dev.maintenance_windows, dev.last_seen_at,
               j.id.label("j_id"), j.state.label("j_state"), j.desired.label("j_desired"), j.ran.label("j_ran"),
               j.activity_at.label("j_activity_at"), j.hold_until.label("j_hold_until"))
        .join(dev, dev.id == r.device_id).outerjoin(j, j.id == r.job_id)
        .where(r.deployment_id == d.id, r.due_at <= now))
    if pending is True:
        query = query.where(r.status == R.PENDING.value, r.position > after)
    elif pending is False:
        query = query.where(r.status != R.PENDING.value)
    query = query.order_by(r.position)
    if limit is not None:
        query = query.limit(limit)
    return list(s.execute(query))


def _recent_dispatches(s: Session, d: m.Deployment, now: datetime, cap: int) -> list[datetime]:
    """The deployment's dispatch times in the last minute, newest first (at most `cap`)."""
    return list(s.scalars(select(m.Job.created_at).where(
        m.Job.deployment_id == d.id, m.Job.created_at > rate.window_start(now))
        .order_by(m.Job.created_at.desc()).limit(cap)))


def _gates(s: Session, d: m.Deployment, device_ids: list[str]) -> dict[str, rm.Gate]:
    """For a rollback: may each device's revert go out (its original change completed)?"""
    if d.rollback_of is None or not device_ids:
        return {}
    out: dict[str, rm.Gate] = {}
    for among in id_in(s, m.DeploymentDevice.device_id, device_ids):
        for device_id, status in s.execute(select(m.DeploymentDevice.device_id, m.DeploymentDevice.status).where(
                m.DeploymentDevice.deployment_id == d.rollback_of, among)):
            out[device_id] = (rm.Gate.OPEN if status == R.COMPLETED
                              else rm.Gate.HOLD if status in RECORD_RUNNING else rm.Gate.CLOSED)
    return out


def _work_due(s: Session, d: m.Deployment, w: Writer, ctx: rm.Context, *, dispatch: bool,
              paused: bool = False) -> None:
    cap = ctx.config.max_per_minute
    if cap is None or not dispatch or paused:
        _handle_due(s, d, w, ctx, _due_rows(s, d, ctx.now), dispatch=dispatch, paused=paused)
        return
    # maxPerMinute: silence checks as usual; pending records page by plan order while the window
    # allows (offline devices skipped on the way use none of it). The rest stay due: `_next_due`
    # wakes the engine when the next slot opens.
    _handle_due(s, d, w, ctx, _due_rows(s, d, ctx.now, pending=False), dispatch=dispatch, paused=paused)
    left = rate.budget(cap, _recent_dispatches(s, d, ctx.now, cap))
    after = -1
    while left > 0:
        page = _due_rows(s, d, ctx.now, pending=True, after=after, limit=left)
        if not page:
            break
        left -= _handle_due(s, d, w, ctx, page, dispatch=dispatch, paused=paused)
        after = page[-1].position


def _handle_due(s: Session, d: m.Deployment, w: Writer, ctx: rm.Context, rows: list[Any], *, dispatch: bool,
                paused: bool) -> int:
    """Feed due rows to the record machine; returns the jobs created."""
    created = len(w.created)
    pending = [row.device_id for row in rows if row.status == R.PENDING]
    gates = _gates(s, d, pending) if dispatch else {}
    held: list[str] = []
    for row in rows:
        rec = _rec(row)
        if rec.status == R.PENDING:
            if not dispatch:
                continue
            gate = gates.get(row.device_id, rm.Gate.OPEN if d.rollback_of is None else rm.Gate.CLOSED)
            if gate == rm.Gate.HOLD:
                held.append(rec.id)
                continue
            windows = row.maintenance_windows or []
            inside = _in_window_safe(windows, ctx.now)
            event: rm.Event = rm.Due(online=bool(row.online), in_window=inside, gate=gate, paused=paused,
                                     window_opens_at=None if inside else _window_opens(ctx, windows))
        elif rec.status in RECORD_RUNNING:
            job = _job(row)
            if job is None:
                continue
            event = rm.SilenceCheck(job=job, device_last_seen=row.last_seen_at)
        else:
            w.apply(rec, row.device_id, [rm.SetRecord({"due_at": None})])  # nothing is due for it
            continue
        w.apply(rec, row.device_id, rm.handle(rec, event, ctx))
    if held:
        # Parked until the original record finishes (released by `_release_rollback`).
        for rec_id in held:
            w.apply(rm.Record(id=rec_id, status=R.PENDING), "", [rm.SetRecord({"due_at": None})])
    return len(w.created) - created


def _release_rollback(s: Session, d: m.Deployment, device_ids: list[str], now: datetime) -> bool:
    """The original records of these devices finished: their parked rollback records are due."""
    if d.rolled_back_by is None or not device_ids:
        return False
    released = 0
    for among in id_in(s, m.DeploymentDevice.device_id, device_ids):
        res = s.execute(update(m.DeploymentDevice).where(
            m.DeploymentDevice.deployment_id == d.rolled_back_by, among,
            m.DeploymentDevice.status == R.PENDING, m.DeploymentDevice.due_at.is_(None),
            m.DeploymentDevice.batch_number <= select(m.Deployment.current_batch)
            .where(m.Deployment.id == d.rolled_back_by).scalar_subquery())
            .values(due_at=now).execution_options(synchronize_session=False))
        released += res.rowcount or 0  # type: ignore[attr-defined]
    return released > 0


def _flush(s: Session, d: m.Deployment, w: Writer, cfg: RolloutConfig, params: EngineParams,
           result: ReconcileResult) -> None:
    w.flush()
    for job in w.created:
        result.dispatched.append(_dispatch_of(d, cfg, job.job_id, job.device_id, job.attempt,
                                              params.default_timeout_minutes))
    result.withdrawn.extend(w.withdrawn)
    if _release_rollback(s, d, w.finished_devices, w.now):
        result.also.add(str(d.rolled_back_by))
        mark_due(s, [str(d.rolled_back_by)], w.now)  # for any replica's engine, not only ours
    result.changed = result.changed or w.changed


# --- the deployment's next move ------------------------------------------------------------------

def _start_batch(s: Session, d: m.Deployment, batch: int, now: datetime) -> None:
    """Make the batch's records due now (they are dispatched in the same reconcile)."""
    s.execute(update(m.DeploymentDevice).where(
        m.DeploymentDevice.deployment_id == d.id, m.DeploymentDevice.batch_number == batch,
        m.DeploymentDevice.status == R.PENDING).values(due_at=now).execution_options(synchronize_session=False))


def _apply(s: Session, d: m.Deployment, decision: Decision, now: datetime, actor: str,
           result: ReconcileResult | None = None, params: EngineParams | None = None) -> None:
    fields: dict[str, Any] = {}
    if decision.batch_finished_at is not None and d.batch_finished_at is None:
        fields["batch_finished_at"] = decision.batch_finished_at
    if decision.kind == Kind.START_BATCH:
        transition(s, d, "dispatch_batch", now, actor, f"batch {decision.batch} of {d.total_batches} started",
                   current_batch=decision.batch, batch_finished_at=None, next_batch_at=None, status_reason="")
        _start_batch(s, d, decision.batch, now)
    elif decision.kind in (Kind.CANCEL, Kind.ROLLBACK):
        _threshold_stop(s, d, decision, now, actor, result or ReconcileResult(d.id), params or EngineParams(), fields)
    elif decision.kind == Kind.PAUSE:
        if d.status == D.PAUSED:  # paused by hand: keep the threshold's reason visible
            if d.status_reason != decision.reason or fields:
                s.execute(update(m.Deployment).where(m.Deployment.id == d.id)
                          .values(status_reason=decision.reason, **fields).execution_options(synchronize_session=False))
                s.refresh(d)
        else:
            transition(s, d, "auto_pause", now, actor, decision.reason, status_reason=decision.reason,
                       next_batch_at=None, **fields)
    elif decision.kind == Kind.FINISH:
        action = "complete" if decision.status == D.COMPLETED else "fail"
        if d.status == D.PAUSED:  # the last batch finished while paused by hand
            transition(s, d, "resume", now, actor, "last batch finished while paused")
        transition(s, d, action, now, actor, decision.reason or "every device record is terminal",
                   status_reason=decision.reason, completed_at=now, next_batch_at=None, **fields)
    elif decision.kind == Kind.WAIT:
        if decision.status and decision.status != d.status:
            transition(s, d, "between_batches", now, actor, f"batch {d.current_batch} done; next at {decision.at}",
                       next_batch_at=decision.at, **fields)
        elif d.next_batch_at != decision.at or fields:
            s.execute(update(m.Deployment).where(m.Deployment.id == d.id)
                      .values(next_batch_at=decision.at, **fields).execution_options(synchronize_session=False))
            s.refresh(d)
    else:
        if decision.status and decision.status != d.status:
            action = "installing" if decision.status == D.INSTALLING else (
                "dispatch_batch" if decision.status == D.DOWNLOADING else "between_batches")
            transition(s, d, action, now, actor, **fields)
        elif fields:
            s.execute(update(m.Deployment).where(m.Deployment.id == d.id).values(**fields)
                      .execution_options(synchronize_session=False))
            s.refresh(d)


def _threshold_stop(s: Session, d: m.Deployment, decision: Decision, now: datetime, actor: str,
                    result: ReconcileResult, params: EngineParams, fields: dict[str, Any]) -> None:
    """onFailureThreshold "cancel" / "rollback": the rest is cancelled; for rollback, a rollback
    deployment reverts the devices where the change completed. The reason goes in the events."""
    result.withdrawn.extend(cancel_records(s, d, now, "rolled back" if decision.kind == Kind.ROLLBACK else "cancelled",
                                           params))
    devices = rollback_devices(s, d) if decision.kind == Kind.ROLLBACK else []
    if decision.kind == Kind.CANCEL or not devices:
        reason = decision.reason if decision.kind == Kind.CANCEL else f"{decision.reason}; nothing to roll back"
        transition(s, d, "auto_cancel", now, actor, reason, status_reason=reason, completed_at=now,
                   next_batch_at=None, **fields)
        return
    assert d.rollback_job_payload is not None  # _threshold_action checked it
    rb = create_rollback(s, d, d.rollback_job_payload, devices, now, actor, created_by=d.created_by,
                         why=decision.reason)
    transition(s, d, "auto_rollback", now, actor, f"{decision.reason}; rollback deployment {rb.id}",
               status_reason=decision.reason, rolled_back_by=rb.id, completed_at=now, next_batch_at=None, **fields)
    result.also.add(rb.id)


def rollback_devices(s: Session, d: m.Deployment) -> list[str]:
    """Every device where the change completed, and every device still applying it (its revert
    waits for the outcome; if the change does not complete there, its revert is skipped)."""
    return sorted(s.scalars(select(m.DeploymentDevice.device_id).where(
        m.DeploymentDevice.deployment_id == d.id,
        m.DeploymentDevice.status.in_([R.COMPLETED.value, R.DOWNLOADING.value, R.INSTALLING.value]))))


def create_records(s: Session, d: m.Deployment, plan: Sequence[Sequence[str]], now: datetime) -> None:
    """The deployment's device records, batch by batch, in plan order (inserted 2,000 at a time)."""
    rows = []
    position = 0
    for batch_number, device_ids in enumerate(plan, start=1):
        for device_id in device_ids:
            rows.append({"id": new_id(), "deployment_id": d.id, "device_id": device_id, "batch_number": batch_number,
                         "position": position, "status": R.PENDING.value, "retry_count": 0, "attempts": 0,
                         "output": "", "error": "", "skip_reason": "", "updated_at": now})
            position += 1
    for i in range(0, len(rows), 2000):
        s.execute(insert(m.DeploymentDevice), rows[i:i + 2000])


def create_rollback(s: Session, d: m.Deployment, job_payload: dict[str, Any], devices: list[str], now: datetime,
                    actor: str, *, created_by: str | None, why: str = "",
                    signature: dict[str, Any] | None = None) -> m.Deployment:
    """Create and start the deployment that reverts `d` on `devices` (the caller moves `d`);
    `signature`: an operator's, over the manifest of this revert (docs/security.md)."""
    config = {k: v for k, v in d.rollout_config.items() if k != "startAt"}  # a revert starts now
    if "onFailureThreshold" in config:
        config["onFailureThreshold"] = "pause"  # a rollback is never rolled back
    rb = m.Deployment(
        id=new_id(), client_id=d.client_id, name=f"Rollback of {d.name}"[:300], type=d.type, payload=d.payload,
        job_payload=job_payload, target_type="devices", target_config={"type": "devices", "deviceIds": sorted(devices)},
        rollout_config=config, status=D.PENDING, status_reason="", version=0, total=len(devices),
        total_batches=0, current_batch=0, n_pending=len(devices), n_running=0, n_completed=0, n_failed=0,
        n_skipped=0, failure_baseline=0, finished_baseline=0, created_by=created_by,
        rollback_of=d.id, created_at=now, updated_at=now, initialized_at=now, signature=signature)
    plan = plan_batches(devices, config)
    rb.total_batches = len(plan)
    rb.batch_sizes = [len(b) for b in plan]
    s.add(rb)
    s.flush()
    create_records(s, rb, plan, now)
    add_event(s, rb, actor, "", D.PENDING, f"rollback of {d.id}" + (f": {why}" if why else ""), now)
    transition(s, rb, "start", now, actor, started_at=now)
    return rb


def _next_due(s: Session, d: m.Deployment, now: datetime | None = None) -> datetime | None:
    r = m.DeploymentDevice
    if d.status == D.PAUSED or d.status not in LIVE:
        # Nothing is dispatched (but a manual retry while paused): only the silence checks of
        # running records are due (a passed batch or retry time would otherwise wake the engine
        # again at once, forever).
        waiting: Any = r.status.in_([x.value for x in RECORD_RUNNING])
        if d.status == D.PAUSED:
            waiting = waiting | ((r.status == R.PENDING.value) & r.manual.is_(True))
        return s.scalar(select(func.min(r.due_at)).where(r.deployment_id == d.id, r.due_at.is_not(None), waiting))
    due = s.scalar(select(func.min(r.due_at)).where(r.deployment_id == d.id, r.due_at.is_not(None)))
    cap = RolloutConfig.parse(d.rollout_config).max_per_minute
    if cap is not None and now is not None and due is not None and due <= now:
        # Records held back by maxPerMinute: due again when the window has room.
        slot = rate.next_slot(cap, _recent_dispatches(s, d, now, cap), now)
        if slot is not None:
            due = slot
    candidates = [t for t in (due, d.next_batch_at) if t is not None]
    return min(candidates) if candidates else None


def _store_due(s: Session, d: m.Deployment, result: ReconcileResult, now: datetime | None = None) -> None:
    """Keep the deployment's stored due time (what every replica's engine looks for) in step."""
    result.next_due = _next_due(s, d, now)
    if d.due_at != result.next_due:
        s.execute(update(m.Deployment).where(m.Deployment.id == d.id).values(due_at=result.next_due)
                  .execution_options(synchronize_session=False))
        d.due_at = result.next_due


def reconcile(s: Session, deployment_id: str, now: datetime, default_timeout_min: float = 30.0, *,
              params: EngineParams | None = None, actor: str = "engine",
              skip_locked: bool = False) -> ReconcileResult:
    """One deployment's whole engine step. `skip_locked`: if another engine holds the
    deployment's row lock (PostgreSQL, another replica), return at once with `skipped` set
    instead of waiting: that engine is doing the work and will store the next due time."""
    params = params or EngineParams(default_timeout_minutes=default_timeout_min)
    d = s.scalar(select(m.Deployment).where(m.Deployment.id == deployment_id)
                 .with_for_update(skip_locked=skip_locked))
    result = ReconcileResult(deployment_id=deployment_id)
    if d is None:
        if skip_locked:
            result.skipped = s.scalar(select(m.Deployment.id).where(m.Deployment.id == deployment_id)) is not None
        return result
    result.status = d.status
    cfg = RolloutConfig.parse(d.rollout_config)
    if d.status not in LIVE:
        # A finished deployment dispatches nothing, but devices still running its jobs must reach
        # a terminal state: their silence checks still apply.
        if d.status in (D.CANCELLED, D.ROLLBACK, D.COMPLETED, D.FAILED) and d.n_running:
            w = Writer(s, d, now)
            _work_due(s, d, w, _ctx(d, now, params), dispatch=False)
            _flush(s, d, w, cfg, params, result)
        _store_due(s, d, result, now)
        return result
    version = d.version
    for _ in range(d.total_batches + 2):  # each pass may start one batch; bounded
        w = Writer(s, d, now)
        _work_due(s, d, w, _ctx(d, now, params), dispatch=d.current_batch > 0, paused=d.status == D.PAUSED)
        _flush(s, d, w, cfg, params, result)
        decision = decide(snapshot(s, d), now)
        _apply(s, d, decision, now, actor, result, params)
        if decision.kind != Kind.START_BATCH:
            break
    result.status = d.status
    result.changed = result.changed or d.version != version
    _store_due(s, d, result, now)
    return result


# --- agent reports -------------------------------------------------------------------------------

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
    withdrawn: list[tuple[str, str, str]] = field(default_factory=list)


def apply_reports(s: Session, reports: Iterable[Report], now: datetime, params: EngineParams | None = None) -> ReportResult:
    """Fold job statuses into jobs and records, in one transaction; stale ones change nothing.

    Set-based: the jobs and records are read as plain rows, each report is fed to the record
    machine, and the writers write everything with one executemany per kind of change."""
    params = params or EngineParams()
    out = ReportResult()
    reports = list(reports)
    if not reports:
        return out
    jt: Any = m.Job.__table__
    rt: Any = m.DeploymentDevice.__table__
    cols = (jt.c.id, jt.c.device_id, jt.c.deployment_id, jt.c.deployment_device_id, jt.c.state, jt.c.desired,
            jt.c.ran, jt.c.activity_at)
    names = tuple(c.name for c in cols)  # rows to dicts by zip: `Row._asdict` builds a key view per row
    jobs: dict[str, dict[str, Any]] = {}
    for among in id_in(s, jt.c.id, {r.job_id for r in reports}):
        for jrow in s.execute(select(*cols).where(among)):
            jobs[jrow[0]] = dict(zip(names, jrow, strict=True))
    dep_ids = sorted({j["deployment_id"] for j in jobs.values()})
    # Lock the deployments in a fixed order (PostgreSQL) so record moves serialize with the engine.
    deps: dict[str, m.Deployment] = {}
    for among in id_in(s, m.Deployment.id, dep_ids):
        deps.update({d.id: d for d in s.scalars(select(m.Deployment).where(among)
                                                 .order_by(m.Deployment.id).with_for_update())})
    if s.get_bind().dialect.name != "sqlite":
        # Re-read the jobs under the deployment locks (SQLite's BEGIN IMMEDIATE already
        # serializes): the engine may have changed one between the first read and the lock.
        for among in id_in(s, jt.c.id, set(jobs)):
            for row in s.execute(select(*cols).where(among)):
                jobs[row[0]] = dict(zip(names, row, strict=True))
    records: dict[str, rm.Record] = {}
    for among in id_in(s, rt.c.id, {j["deployment_device_id"] for j in jobs.values()}):
        for rrow in s.execute(select(rt.c.id, rt.c.job_id, rt.c.status, rt.c.runs, rt.c.attempts, rt.c.error,
                                     rt.c.due_at, rt.c.manual, rt.c.wait_until).where(among)):
            records[rrow.id] = _rec(rrow)
    writers: dict[str, Writer] = {}
    contexts: dict[str, rm.Context] = {}
    for rep in reports:
        job = jobs.get(rep.job_id)
        if job is None or job["device_id"] != rep.device_id:
            continue  # unknown, or another device's job: never trusted
        try:
            state = JobState(rep.state)
        except ValueError:
            continue
        d = deps.get(job["deployment_id"])
        rec = records.get(job["deployment_device_id"])
        if d is None or rec is None:
            continue
        if job["state"] in JOB_TERMINAL_VALUES:
            if state in JOB_TERMINAL:
                out.acks.append((rep.device_id, job["id"], job["state"]))  # a duplicate: ack again
            continue
        dep_id = job["deployment_id"]  # (not `d.id`: an ORM attribute read per report)
        ctx = contexts.get(dep_id) or contexts.setdefault(dep_id, _ctx(d, now, params))
        w = writers.get(dep_id) or writers.setdefault(dep_id, Writer(s, d, now))
        view = rm.Job(id=job["id"], state=JobState(job["state"]), desired=Desired(job["desired"]), ran=bool(job["ran"]),
                      activity_at=job["activity_at"])
        instructions = rm.handle(rec, rm.Reported(job=view, state=state, exit_code=rep.exit_code,
                                                  output=rep.output[-OUTPUT_LIMIT:], reason=rep.reason), ctx)
        if not instructions:
            continue
        records[rec.id] = w.apply(rec, rep.device_id, instructions)
        for ins in instructions:
            if isinstance(ins, rm.UpdateJob):
                job.update({k: v for k, v in ins.values.items() if k in ("state", "ran", "activity_at")})
        if state in JOB_TERMINAL:
            out.acks.append((rep.device_id, job["id"], state.value))
        out.touched.add(dep_id)
    for dep_id, w in writers.items():
        d = deps[dep_id]
        w.flush()
        out.withdrawn.extend(w.withdrawn)
        if _release_rollback(s, d, w.finished_devices, now):
            out.touched.add(str(d.rolled_back_by))
    # Due now for whichever engine gets there first (this replica's is poked right after commit).
    mark_due(s, out.touched, now)
    return out


# --- desired state of a device's jobs ------------------------------------------------------------

@dataclass
class DeviceJobs:
    jobs: list[Dispatch] = field(default_factory=list)
    withdrawn: list[tuple[str, str, str]] = field(default_factory=list)
    late_arrivals: list[str] = field(default_factory=list)
    """Deployments with a record of these devices that waited for them (offlineDevices "wait"):
    made due now, to be reconciled."""
    revoked: list[str] = field(default_factory=list)
    """Of these devices, the revoked ones: their streams are to be closed."""


def wake_late_arrivers(s: Session, device_ids: Sequence[str], now: datetime) -> list[str]:
    """These devices connected: their records waiting as late arrivers (still within the wait,
    deployment live) are due now, so the engine dispatches them. The deployments to reconcile."""
    r, d = m.DeploymentDevice, m.Deployment
    found: list[tuple[str, str]] = []
    for among in id_in(s, r.device_id, device_ids):
        found.extend((rec_id, dep_id) for rec_id, dep_id in s.execute(
            select(r.id, r.deployment_id).join(d, d.id == r.deployment_id).where(
                among, r.wait_until >= now, r.status == R.PENDING.value,
                d.status.in_([x.value for x in LIVE]))))
    for among in id_in(s, r.id, [rec_id for rec_id, _ in found]):
        s.execute(update(r).where(among, r.status == R.PENDING.value).values(due_at=now)
                  .execution_options(synchronize_session=False))
    return sorted({dep for _, dep in found})


def device_jobs(s: Session, device_ids: Sequence[str], default_timeout_min: float = 30.0) -> DeviceJobs:
    """What these devices should be doing: every job to run and every withdrawal not yet
    acknowledged. Sent whenever a device (re)connects; the agent's journal makes a job delivered
    twice run once."""
    out = DeviceJobs()
    if not device_ids:
        return out
    j, r, d = m.Job, m.DeploymentDevice, m.Deployment
    for among in id_in(s, m.Device.id, device_ids):
        out.revoked.extend(s.scalars(select(m.Device.id).where(among, m.Device.revoked_at.is_not(None))))
    for among in id_in(s, j.device_id, device_ids):
        rows = s.execute(
            select(j.id, j.device_id, j.attempt, j.desired, j.withdraw_reason, d)
            .join(r, r.id == j.deployment_device_id).join(d, d.id == j.deployment_id)
            .where(among, j.state.not_in(JOB_TERMINAL_VALUES))).all()
        for job_id, device_id, attempt, desired, why, dep in rows:
            if desired == Desired.WITHDRAWN:
                out.withdrawn.append((device_id, job_id, why or "withdrawn"))
            else:
                out.jobs.append(_dispatch_of(dep, RolloutConfig.parse(dep.rollout_config), job_id, device_id, attempt,
                                             default_timeout_min))
    return out


# --- API actions on records (called by the service, in its transaction) ---------------------------

def _records_and_jobs(*where: Any) -> Any:
    """Records with their current job's columns (`j_*`), as `_rec` and `_job` read them."""
    r, j = m.DeploymentDevice, m.Job
    return (select(r.id, r.device_id, r.status, r.job_id, r.runs, r.attempts, r.error, r.due_at, r.manual,
                   r.wait_until, j.id.label("j_id"), j.state.label("j_state"), j.desired.label("j_desired"),
                   j.ran.label("j_ran"), j.activity_at.label("j_activity_at"), j.hold_until.label("j_hold_until"))
            .outerjoin(j, j.id == r.job_id).where(*where))


def cancel_records(s: Session, d: m.Deployment, now: datetime, reason: str,
                   params: EngineParams | None = None) -> list[tuple[str, str, str]]:
    """Cancel (or roll back while paused): pending records are skipped (failed if an earlier
    attempt failed), jobs never delivered are withdrawn; running records are left alone.
    Returns the withdrawals to send."""
    params = params or EngineParams()
    ctx = _ctx(d, now, params)
    r = m.DeploymentDevice
    w = Writer(s, d, now)
    rows = s.execute(_records_and_jobs(r.deployment_id == d.id, r.status.in_([R.PENDING.value, R.DOWNLOADING.value])))
    for row in rows:
        rec = _rec(row)
        job = _job(row) if row.status == R.DOWNLOADING else None
        w.apply(rec, row.device_id, rm.handle(rec, rm.Cancelled(job=job, reason=reason), ctx))
    w.flush()
    _release_rollback(s, d, w.finished_devices, now)
    return w.withdrawn


def revoke_records(s: Session, device_id: str, now: datetime,
                   params: EngineParams | None = None) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The device was revoked: each of its unfinished records (in every deployment not yet
    finished) is handed the `Revoked` event, so no rollout waits for it. Returns the deployments
    touched (made due, so their engines re-decide) and the withdrawals to send."""
    params = params or EngineParams()
    r, dep = m.DeploymentDevice, m.Deployment
    open_statuses = [R.PENDING.value, *(x.value for x in RECORD_RUNNING)]
    dep_ids = sorted(set(s.scalars(
        select(r.deployment_id).join(dep, dep.id == r.deployment_id)
        .where(r.device_id == device_id, r.status.in_(open_statuses),
               dep.status.not_in([x.value for x in FINISHED])))))
    touched: list[str] = []
    withdrawn: list[tuple[str, str, str]] = []
    for dep_id in dep_ids:
        d = s.get(dep, dep_id, with_for_update=True)  # the engine's lock: one writer of its records
        if d is None:
            continue
        ctx, w = _ctx(d, now, params), Writer(s, d, now)
        rows = s.execute(_records_and_jobs(r.deployment_id == d.id, r.device_id == device_id,
                                           r.status.in_(open_statuses)))
        for row in rows:
            rec = _rec(row)
            job = _job(row) if row.status != R.PENDING else None
            w.apply(rec, row.device_id, rm.handle(rec, rm.Revoked(job=job), ctx))
        w.flush()
        _release_rollback(s, d, w.finished_devices, now)
        withdrawn += w.withdrawn
        touched.append(d.id)
    mark_due(s, touched, now)
    return touched, withdrawn


def manual_retry(s: Session, d: m.Deployment, record: m.DeploymentDevice, now: datetime,
                 params: EngineParams | None = None) -> None:
    """One more attempt for this record, now (domain/records.py says whether it may)."""
    ctx = _ctx(d, now, params or EngineParams())
    rec = rm.Record(id=record.id, status=R(record.status), job_id=record.job_id, runs=record.runs,
                    attempts=record.attempts, error=record.error or "", due_at=record.due_at, manual=record.manual,
                    wait_until=record.wait_until)
    w = Writer(s, d, now)
    w.apply(rec, record.device_id, rm.handle(rec, rm.ManualRetry(), ctx))
    w.flush()
    mark_due(s, [d.id], now)


def due_deployment_ids(s: Session, now: datetime, limit: int = 500) -> list[str]:
    """Deployments whose stored due time has come (one index range, whatever the fleet size)."""
    return list(s.scalars(select(m.Deployment.id).where(m.Deployment.due_at <= now)
                          .order_by(m.Deployment.due_at).limit(limit)))


def earliest_due(s: Session) -> datetime | None:
    """The earliest stored due time of any deployment (one index lookup)."""
    return s.scalar(select(func.min(m.Deployment.due_at)))


def postpone(s: Session, deployment_id: str, at: datetime) -> None:
    """Back off a deployment whose reconcile failed, for every replica (not only this one)."""
    s.execute(update(m.Deployment).where(m.Deployment.id == deployment_id).values(due_at=at)
              .execution_options(synchronize_session=False))


def live_deployment_ids(s: Session) -> list[str]:
    """Deployments the engine must look after: live ones, and finished ones with devices still running."""
    live = set(s.scalars(select(m.Deployment.id).where(m.Deployment.status.in_([x.value for x in LIVE]))))
    running = set(s.scalars(select(m.Deployment.id).where(m.Deployment.n_running > 0)))
    return sorted(live | running)
