"""Writes the record machine's instructions (domain/records.py) as guarded, set-based SQL.

One `Writer` per deployment and transaction. Instructions for the same record or job are merged
in memory (a tick may carry `installing` and `completed` for one job), then written with one
executemany per kind of change. Each record update is guarded by the status it was read in
(compare-and-set); the deployment row is locked for the whole transaction, so the guard always
holds and the progress counters can be moved by the same deltas, in the same transaction, without
counting a single record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from common.ids import new_id
from common.states import Desired, JobState
from common.states import RecordStatus as R
from coordinator.domain import records as rm
from coordinator.domain.states import record_allowed
from coordinator.store import bulk
from coordinator.store import models as m

_COUNTER = {R.PENDING: "n_pending", R.DOWNLOADING: "n_running", R.INSTALLING: "n_running",
            R.COMPLETED: "n_completed", R.FAILED: "n_failed", R.SKIPPED: "n_skipped"}


@dataclass
class _RecordWrite:
    original: R
    current: R
    device_id: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class NewJob:
    job_id: str
    record_id: str
    device_id: str
    attempt: int
    hold_until: datetime | None = None


class Writer:
    def __init__(self, s: Session, d: m.Deployment, now: datetime) -> None:
        self.s = s
        self.d = d
        self.now = now
        self._records: dict[str, _RecordWrite] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._withdrawn: dict[str, tuple[str, str]] = {}
        self.created: list[NewJob] = []
        self.finished_devices: list[str] = []
        """Devices whose record reached a terminal status in this write (releases rollbacks)."""

    # --- collecting ----------------------------------------------------------------------------

    def apply(self, rec: rm.Record, device_id: str, instructions: list[rm.Instruction]) -> rm.Record:
        """Take `instructions` for `rec`; return the record as it will be (for the next event)."""
        for ins in instructions:
            if isinstance(ins, rm.Move):
                if not record_allowed(ins.move, rec.status):
                    raise AssertionError(f"record {rec.id}: illegal move {ins.move} from {rec.status}")
                w = self._records.setdefault(rec.id, _RecordWrite(rec.status, rec.status, device_id))
                w.current = ins.to
                w.values.update(ins.values)
                rec = _replace(rec, status=ins.to, values=ins.values)
            elif isinstance(ins, rm.SetRecord):
                w = self._records.setdefault(rec.id, _RecordWrite(rec.status, rec.status, device_id))
                w.values.update(ins.values)
                rec = _replace(rec, status=rec.status, values=ins.values)
            elif isinstance(ins, rm.CreateJob):
                job_id = new_id()
                self.created.append(NewJob(job_id, rec.id, device_id, ins.attempt, ins.hold_until))
                w = self._records.setdefault(rec.id, _RecordWrite(rec.status, rec.status, device_id))
                w.values["job_id"] = job_id
                rec = _replace(rec, status=rec.status, values={"job_id": job_id})
            elif isinstance(ins, rm.UpdateJob):
                self._jobs.setdefault(ins.job_id, {}).update(ins.values)
            elif isinstance(ins, rm.Withdraw):
                self._withdrawn[ins.job_id] = (device_id, ins.reason)
        return rec

    @property
    def withdrawn(self) -> list[tuple[str, str, str]]:
        """(device id, job id, reason) of the jobs withdrawn here: tell their agents after commit."""
        return [(dev, job, why) for job, (dev, why) in self._withdrawn.items()]

    @property
    def changed(self) -> bool:
        return bool(self._records or self._jobs or self._withdrawn or self.created)

    # --- writing -------------------------------------------------------------------------------

    def flush(self) -> None:
        s, now = self.s, self.now
        jt: Any = m.Job.__table__
        rt: Any = m.DeploymentDevice.__table__
        if self.created:
            queued, run = JobState.QUEUED.value, Desired.RUN.value
            bulk.insert_many(s, jt, _JOB_COLUMNS, [
                (j.job_id, j.record_id, self.d.id, j.device_id, j.attempt, queued, run, "", False, now, None, "", "",
                 now, now, j.hold_until) for j in self.created])
        for job_id, (_dev, why) in self._withdrawn.items():
            self._jobs.setdefault(job_id, {}).update(desired=Desired.WITHDRAWN.value, withdraw_reason=why)
        _grouped_update(s, jt, {k: ({**v, "updated_at": now}, ()) for k, v in self._jobs.items()})
        deltas: dict[str, int] = {}
        rows: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {}
        for rec_id, w in self._records.items():
            values = dict(w.values)
            if w.current != w.original:
                values["status"] = w.current.value
                deltas[_COUNTER[w.original]] = deltas.get(_COUNTER[w.original], 0) - 1
                deltas[_COUNTER[w.current]] = deltas.get(_COUNTER[w.current], 0) + 1
                if w.original == R.INSTALLING:
                    deltas["n_installing"] = deltas.get("n_installing", 0) - 1
                if w.current == R.INSTALLING:
                    deltas["n_installing"] = deltas.get("n_installing", 0) + 1
                if w.current in (R.COMPLETED, R.FAILED, R.SKIPPED):
                    self.finished_devices.append(w.device_id)
            if "runs" in values and "retry_count" not in values:
                values["retry_count"] = max(0, int(values["runs"]) - 1)
            values["updated_at"] = now
            rows[rec_id] = (values, (w.original.value,))  # guarded by the status it was read in
        _grouped_update(s, rt, rows, guard="status")
        deltas = {k: v for k, v in deltas.items() if v}
        if deltas:
            col = m.Deployment.__table__.c
            s.execute(update(m.Deployment).where(m.Deployment.id == self.d.id)
                      .values({k: col[k] + v for k, v in deltas.items()})
                      .execution_options(synchronize_session=False))
            for k, v in deltas.items():
                # The ORM object now matches the row, without being marked dirty (no second UPDATE).
                set_committed_value(self.d, k, getattr(self.d, k) + v)


_JOB_COLUMNS = ("id", "deployment_device_id", "deployment_id", "device_id", "attempt", "state", "desired",
                "withdraw_reason", "ran", "activity_at", "exit_code", "output", "reason", "created_at",
                "updated_at", "hold_until")


def _replace(rec: rm.Record, *, status: R, values: dict[str, Any]) -> rm.Record:
    return rm.Record(id=rec.id, status=status, job_id=values.get("job_id", rec.job_id),
                     runs=int(values.get("runs", rec.runs)), attempts=int(values.get("attempts", rec.attempts)),
                     error=str(values.get("error", rec.error)), due_at=values.get("due_at", rec.due_at),
                     manual=bool(values.get("manual", rec.manual)), wait_until=values.get("wait_until", rec.wait_until))


def _grouped_update(s: Session, table: Any, rows: dict[str, tuple[dict[str, Any], tuple[Any, ...]]], *,
                    guard: str | None = None) -> None:
    """UPDATE … WHERE id = ? [AND guard = ?] for many rows (id -> (values, (guard value,))): one
    executemany per set of columns (store/bulk.py: compiled once, rows as plain tuples)."""
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for row_id, (values, guarded) in rows.items():
        keys = tuple(sorted(values))
        groups.setdefault(keys, []).append((*(values[k] for k in keys), row_id, *guarded))
    where = ("id",) if guard is None else ("id", guard)
    for keys, batch in groups.items():
        bulk.update_many(s, table, keys, where, batch)
