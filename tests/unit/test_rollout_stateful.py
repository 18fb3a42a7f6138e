"""A hypothesis stateful test of the rollout engine over a real store (issue 3, "Done when").

Random sequences of API actions (start, pause, resume, cancel, manual retry, rollback), engine
passes (`reconcile`), agent reports (fresh, duplicated, stale, from the wrong device, several in
one flush), devices going on and offline, and a fake clock moving forward, over a SQLite file in
a temp dir. After every step the store is queried and these invariants are checked:

1. the progress counters equal a GROUP BY over the records and sum to the total;
2. a completed record stays completed; failed and skipped records leave only by manual retry;
3. no job is created (no Dispatch, no jobs row) outside an engine pass on an active deployment:
   never while pending, paused, cancelled, completed, failed or rolled back; cancelled
   deployments keep no pending records;
4. the next batch never starts while a threshold is crossed (computed here, independently, from
   the records and the resume baselines): a batch done with a threshold crossed pauses (or, at
   the end, fails) the deployment;
5. current_batch never decreases and never exceeds total_batches;
6. percentComplete is round-half-up((completed + failed) / total * 100);
7. exactly-once bookkeeping: a report moves a record only when it is for the record's current,
   unfinished job from the right device; a job's result applied twice (or late, or from another
   device) changes nothing; a finished job row never changes; a record's attempts equal its jobs.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from common.errors import Conflict, InvalidArgument, RetriesExhausted
from common.maintenance import in_window
from coordinator.auth import Principal, authenticate_api
from coordinator.engine.rollout import JOB_TERMINAL, Dispatch, Report, apply_reports, reconcile
from coordinator.service import deployments as svc
from coordinator.service import payloads
from coordinator.service.tenancy import bootstrap
from coordinator.store import models as m
from coordinator.store.db import Store

T0 = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)  # a Monday, 06:00 UTC

ACTIVE = {"downloading", "installing", "running"}
LIVE = ACTIVE | {"paused"}
NO_DISPATCH = {"draft", "pending", "paused", "cancelled", "completed", "failed", "rollback"}
RUNNING = {"downloading", "installing"}
TERMINAL = {"completed", "failed", "skipped"}
RANK = {"queued": 0, "received": 1, "downloading": 2, "installing": 3}

WINDOWS = [
    [],                              # no windows: always in
    ["daily 00:00-24:00 UTC"],       # always in
    ["daily 00:00-12:00 UTC"],       # in for half of each day
    ["Sun 03:00-04:00 UTC"],         # almost always out
]


@functools.cache
def _template_db() -> Path:
    """One migrated SQLite file per test run; each example copies it (migrations are slow)."""
    directory = Path(tempfile.mkdtemp(prefix="convoy-stateful-tpl-", dir=_tmp_root()))
    path = directory / "template.db"
    store = Store.open(f"sqlite:///{path}")
    store.close()
    return path


def _tmp_root() -> str | None:
    shm = Path("/dev/shm")  # a RAM-backed temp dir where there is one: no fsync per commit
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _fresh_store() -> tuple[Store, Path]:
    directory = Path(tempfile.mkdtemp(prefix="convoy-stateful-", dir=_tmp_root()))
    path = directory / "convoy.db"
    shutil.copyfile(_template_db(), path)
    return Store.open(f"sqlite:///{path}", run_migrations=False), directory


def threshold_crossed(failed: int, total: int, failure_baseline: int,
                      count: int | None, percent: float | None, *, basis: str = "targets", finished: int = 0,
                      finished_baseline: int = 0, min_finished: int = 0) -> bool:
    """The rule of docs/deployments-rules.md (percent of the total targets, or of the devices
    finished since the last resume with a minimum sample), written again here on purpose."""
    failed_since = failed - failure_baseline
    if count is not None and failed_since >= count:
        return True
    finished_since = finished - finished_baseline
    if percent is None or failed_since <= 0 or finished_since < min_finished:
        return False
    denominator = finished_since if basis == "finished" else total
    return denominator > 0 and Fraction(failed_since * 100, denominator) >= Fraction(str(percent))


def round_half_up_percent(done: int, total: int) -> int:
    if total == 0:
        return 0
    q = Fraction(done * 100, total)
    return int(q + Fraction(1, 2)) if q >= 0 else 0


size_st = st.one_of(st.integers(1, 4), st.sampled_from(["10%", "25%", "34%", "50%", "100%"]))
# Rollout strategies (docs/deployments-rules.md): one of batchSize / batches / ramp, and the
# optional gate, basis and sample; absent most of the time, so the seed's rules stay exercised.
sizing_st = st.one_of(
    size_st.map(lambda size: {"batchSize": size}), size_st.map(lambda size: {"batchSize": size}),
    st.lists(size_st, min_size=1, max_size=3).map(lambda steps: {"batches": steps}),
    st.builds(lambda start, factor, cap: {"ramp": {"start": start, "factor": factor, "max": cap}},
              st.integers(1, 2), st.sampled_from([1, 1.5, 2]), st.sampled_from([None, 3, "50%"])))
strategy_st = st.builds(
    lambda gate, basis, sample: {
        **({"successGatePercent": gate} if gate else {}), **({"failureBasis": basis} if basis else {}),
        **({"minFinishedForPercent": sample} if sample is not None else {})},
    st.sampled_from([None, None, 50, 100]), st.sampled_from([None, "targets", "finished"]),
    st.sampled_from([None, 0, 2]))

staggered_cfg = st.builds(
    lambda sizing, delay, count, percent, strategies: {
        **sizing, "batchDelayMinutes": delay,
        **({"pauseOnFailureCount": count} if count else {}),
        **({"pauseOnFailurePercent": percent} if percent else {}), **strategies},
    sizing_st,
    st.sampled_from([0, 0.5, 5, 30]),
    st.sampled_from([None, 1, 2, 3]),            # thresholds on most of the time: auto-pause is
    st.sampled_from([None, 10, 25, 50, 100]),    # the rule most worth exercising
    strategy_st)

rollout_strategy_st = st.builds(
    lambda per_minute, action, start_in: {
        **({"maxPerMinute": per_minute} if per_minute else {}),
        **({"onFailureThreshold": action} if action else {}),
        **({"startAt": (T0 + timedelta(minutes=start_in)).isoformat()} if start_in else {})},
    st.sampled_from([None, None, 1, 2]), st.sampled_from([None, "pause", "cancel", "rollback"]),
    st.sampled_from([None, None, 5, 60]))

rollout_cfg = st.builds(
    lambda staggered, immediate, windows, retries, backoff, timeout, strategies: {
        "type": "immediate" if immediate else "staggered",
        **({} if immediate else {"staggered": staggered}),
        "respectMaintenanceWindows": windows,
        "retryConfig": {"maxRetries": retries, "backoffMinutes": backoff},
        "installTimeoutMinutes": timeout,
        **strategies,
    },
    staggered_cfg, st.integers(0, 2).map(lambda i: i == 0), st.booleans(), st.integers(0, 3),
    st.lists(st.sampled_from([0, 1, 5, 15, 60]), min_size=1, max_size=3),
    st.sampled_from([5, 30, 120]), rollout_strategy_st)

devices_st = st.lists(st.tuples(st.booleans() | st.just(True), st.sampled_from(range(len(WINDOWS)))),
                      min_size=2, max_size=10)


class RolloutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store, self.dir = _fresh_store()
        self.now = T0
        self.deployments: list[str] = []
        self.jobs: list[Dispatch] = []
        self.next_due: dict[str, datetime] = {}
        self.device_windows: dict[str, int] = {}
        self.device_ids: list[str] = []
        self.who: Principal
        # what the last step was, for the invariants
        self.step = "init"
        self.step_dispatched: list[Dispatch] = []
        self.step_pre: dict[str, Any] = {}
        self.retried_record: str | None = None
        self.expected_record: tuple[str, dict[str, Any]] | None = None
        self.prev: dict[str, Any] | None = None

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- reading the store ---------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self.store.read() as s:
            deps = {d.id: d for d in s.scalars(select(m.Deployment))}
            records = {r.id: r for r in s.scalars(select(m.DeploymentDevice))}
            jobs = {j.id: j for j in s.scalars(select(m.Job))}
            online = {dev_id: bool(on) for dev_id, on in s.execute(select(m.Device.id, m.Device.online))}
        return {"deps": deps, "records": records, "jobs": jobs, "online": online}

    def begin_step(self, name: str) -> None:
        self.step = name
        self.step_dispatched = []
        self.retried_record = None
        self.expected_record = None
        # The state checked after the previous step is the state before this one.
        self.step_pre = self.prev if self.prev is not None else self.state()

    def dep_cfg(self, d: m.Deployment) -> tuple[int, int | None, float | None]:
        rc = d.rollout_config or {}
        st_ = rc.get("staggered") or {}
        return (int((rc.get("retryConfig") or {}).get("maxRetries", 0)), st_.get("pauseOnFailureCount"),
                st_.get("pauseOnFailurePercent"))

    # --- setup ---------------------------------------------------------------------------

    @initialize(devices=devices_st, cfg=rollout_cfg, target_all=st.booleans(),
                start=st.integers(0, 3).map(lambda i: i > 0))
    def setup(self, devices: list[tuple[bool, int]], cfg: dict[str, Any], target_all: bool, start: bool) -> None:
        boot = bootstrap(self.store, "acme", self.now)
        client_id = boot["client_id"]
        with self.store.tx() as s:
            self.who = authenticate_api(s, boot["token"])
            for i, (online, w) in enumerate(devices):
                # Fixed ids: the batch plan sorts device ids, and hypothesis needs every run of
                # an example to behave the same.
                dev_id = str(uuid.UUID(int=(0x5EED << 64) + i))
                s.add(m.Device(id=dev_id, client_id=client_id, machine_id=f"machine-{i}",
                               credential_hash=uuid.uuid4().hex, hostname=f"host-{i}", online=online,
                               maintenance_windows=WINDOWS[w], created_at=self.now, updated_at=self.now))
                self.device_ids.append(dev_id)
                self.device_windows[dev_id] = w
        with self.store.tx() as s:
            script = payloads.create_script(s, self.who, client_id, "cleanup", "sh", "echo ok", "", "echo undo",
                                            self.now)
        body: dict[str, Any] = {
            "name": "stateful", "type": "script", "payload": {"scriptId": script["id"], "parameters": {}},
            "targetType": "all" if target_all else "devices", "rolloutConfig": cfg}
        if not target_all:
            body["targetConfig"] = {"type": "devices", "deviceIds": list(self.device_ids)}
        with self.store.tx() as s:
            dep = svc.create(s, self.who, body, self.now)
        if cfg.get("onFailureThreshold") == "rollback":
            event("onFailureThreshold rollback")
        with self.store.tx() as s:
            _, preview = svc.initialize(s, self.who, dep["id"], self.now)
        assert preview["resolvedCount"] == len(devices)
        self.deployments.append(dep["id"])
        # Troubleshooting: "stuck in pending": initialize never starts anything by itself.
        with self.store.tx() as s:
            res = reconcile(s, dep["id"], self.now)
        assert res.dispatched == [] and res.status == "pending"
        # Cannot edit after initialize.
        with self.store.tx() as s, pytest.raises(Conflict):
            svc.update_spec(s, self.who, dep["id"], {"name": "renamed"}, self.now)
        if start:
            with self.store.tx() as s:
                svc.start(s, self.who, dep["id"], self.now)
        self.step = "setup"
        self.prev = None

    # --- rules ---------------------------------------------------------------------------

    @rule(minutes=st.sampled_from([0.25, 1, 5, 15, 31, 61, 240, 720]))
    def advance_clock(self, minutes: float) -> None:
        self.begin_step("advance")
        self.now += timedelta(minutes=minutes)

    @rule(data=st.data())
    def reconcile_one(self, data: st.DataObject, dep_id: str | None = None) -> None:
        if dep_id is None:
            dep_id = data.draw(st.sampled_from(self.deployments))
        self.begin_step("reconcile")
        self.step_pre["dep"] = dep_id
        with self.store.tx() as s:
            res = reconcile(s, dep_id, self.now)
        self.step_dispatched = res.dispatched
        for other in sorted(res.also):  # onFailureThreshold "rollback" started a rollback deployment
            if other not in self.deployments:
                self.deployments.append(other)
                event("automatic rollback")
        if res.next_due is not None:
            self.next_due[dep_id] = res.next_due
        else:
            self.next_due.pop(dep_id, None)
        self.jobs.extend(res.dispatched)

    @rule(data=st.data())
    def engine_tick(self, data: st.DataObject) -> None:
        """What the engine does on a wake: reconcile a deployment that is still live."""
        pre = self.prev or self.state()
        live = [d for d in self.deployments if pre["deps"][d].status in LIVE] or self.deployments
        self.reconcile_one(data, data.draw(st.sampled_from(live)))

    @rule(data=st.data(), fail=st.sampled_from([0.0, 0.2, 0.5, 1.0]))
    def agents_finish(self, data: st.DataObject, fail: float) -> None:
        """Every device with a job in flight reports a final result in one flush."""
        pre = self.prev or self.state()
        reps = []
        for r in sorted(pre["records"].values(), key=lambda r: (self.deployments.index(r.deployment_id), r.position)):
            if r.status in RUNNING and r.job_id:
                failed = data.draw(st.integers(0, 9)) < fail * 10
                reps.append(Report(device_id=r.device_id, job_id=r.job_id, state="failed" if failed else "completed",
                                   exit_code=1 if failed else 0, reason="exit status 1" if failed else ""))
        self.begin_step("report")
        self.step_pre["reports"] = reps
        with self.store.tx() as s:
            apply_reports(s, reps, self.now)

    # The rules that move a rollout forward run twice as often as the operator's actions.
    @rule(data=st.data())
    def engine_wake_when_due(self, data: st.DataObject) -> None:
        """The engine sleeping until the earliest due time it was given, then reconciling."""
        pre = self.prev or self.state()
        due = sorted((t, d) for d, t in self.next_due.items() if pre["deps"][d].status in LIVE)
        if due:
            self.now = max(self.now, due[0][0])
            self.reconcile_one(data, due[0][1])
        else:
            self.engine_tick(data)

    @rule(data=st.data(), fail=st.sampled_from([0.0, 0.2, 0.5, 1.0]))
    def agents_finish_again(self, data: st.DataObject, fail: float) -> None:
        self.agents_finish(data, fail)

    def _pick_job(self, data: st.DataObject) -> Dispatch:
        """Mostly a job still in flight; sometimes any job ever dispatched (stale, finished)."""
        pre = self.prev or self.state()
        current = [j for j in self.jobs if pre["records"][pre["jobs"][j.job_id].deployment_device_id].job_id == j.job_id
                   and pre["jobs"][j.job_id].state not in JOB_TERMINAL]
        if current and data.draw(st.integers(0, 3)) > 0:
            return data.draw(st.sampled_from(current))
        return data.draw(st.sampled_from(self.jobs))

    @precondition(lambda self: bool(self.device_ids))
    @rule(data=st.data())
    def toggle_online(self, data: st.DataObject) -> None:
        dev_id = data.draw(st.sampled_from(self.device_ids))
        self.begin_step("toggle_online")
        with self.store.tx() as s:
            dev = s.get(m.Device, dev_id)
            assert dev is not None
            dev.online = not dev.online

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data(), state=st.sampled_from(["downloading", "installing", "completed", "failed", "skipped"]),
          wrong_device=st.booleans(), exit_code=st.sampled_from([0, 1, None]))
    def agent_report(self, data: st.DataObject, state: str, wrong_device: bool, exit_code: int | None) -> None:
        job = self._pick_job(data)
        device_id = job.device_id
        if wrong_device:
            others = [d for d in self.device_ids if d != job.device_id]
            if others:
                device_id = data.draw(st.sampled_from(others))
        self.begin_step("report")
        rep = Report(device_id=device_id, job_id=job.job_id, state=state, exit_code=exit_code, output="out",
                     reason="boom" if state == "failed" else "")
        self.step_pre["reports"] = [rep]
        self.step_pre["single"] = True
        self.expected_record = self._expect(rep)
        with self.store.tx() as s:
            apply_reports(s, [rep], self.now)

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def agent_report_flush(self, data: st.DataObject) -> None:
        """Several reports in one flush, with duplicates of the same result."""
        reps = data.draw(st.lists(st.builds(
            lambda j, state: Report(device_id=j.device_id, job_id=j.job_id, state=state, exit_code=0),
            st.builds(lambda: self._pick_job(data)), st.sampled_from(["installing", "completed", "failed"])),
            min_size=1, max_size=6))
        reps = reps + reps[: data.draw(st.integers(0, len(reps)))]
        self.begin_step("report")
        self.step_pre["reports"] = reps
        with self.store.tx() as s:
            apply_reports(s, reps, self.now)

    def _expect(self, rep: Report) -> tuple[str, dict[str, Any]] | None:
        """The record a single fresh report must move, and where to."""
        pre = self.step_pre
        job = pre["jobs"].get(rep.job_id)
        if job is None or job.device_id != rep.device_id or job.state in JOB_TERMINAL:
            return None
        if rep.state not in JOB_TERMINAL and RANK[rep.state] <= RANK.get(job.state, 0):
            return None
        r = pre["records"][job.deployment_device_id]
        if r.job_id != job.id:
            return None
        if r.status not in RUNNING:
            # a late result of the record's current attempt: a completion is accepted
            if rep.state == "completed" and r.status in ("pending", "failed", "skipped"):
                return r.id, {"status": "completed"}
            # a skipped record (its job withdrawn as never delivered) whose attempt did run and failed
            if rep.state == "failed" and r.status == "skipped":
                return r.id, {"status": "failed"}
            return None
        max_retries = self.dep_cfg(pre["deps"][r.deployment_id])[0]
        runs = r.runs + (1 if rep.state in ("downloading", "installing", "completed", "failed") and not job.ran else 0)
        if rep.state == "downloading":
            want: dict[str, Any] = {"status": r.status, "runs": runs}
        elif rep.state == "installing":
            want = {"status": "installing", "runs": runs}
        elif rep.state == "completed":
            want = {"status": "completed", "runs": runs}
        elif rep.state == "skipped":
            # a skipped attempt did not run: skipped, unless an earlier attempt failed
            want = {"status": "skipped" if r.runs == 0 else "failed", "runs": r.runs}
        elif runs - 1 < max_retries and pre["deps"][r.deployment_id].status in LIVE:
            # (a cancelled or rolled-back deployment never dispatches a retry: failed at once)
            want = {"status": "pending", "runs": runs, "retry_count": runs}
        else:
            want = {"status": "failed", "runs": runs, "retry_count": max(0, runs - 1)}
        return r.id, want

    def _api(self, action: str, dep_id: str, allowed: set[str], *extra: Any) -> None:
        pre = self.step_pre["deps"][dep_id]
        fn = getattr(svc, action)
        try:
            with self.store.tx() as s:
                fn(s, self.who, dep_id, *extra, self.now)
        except Conflict:
            assert pre.status not in allowed, f"{action} refused from {pre.status}"
        else:
            assert pre.status in allowed, f"{action} accepted from {pre.status}"

    # Operator actions, weighted: cancel and rollback end a rollout, so they come rarely.
    @rule(data=st.data(), action=st.sampled_from(["pause", "pause", "resume", "resume", "resume", "start", "start",
                                                  "retry_device", "retry_device", "retry_device", "cancel",
                                                  "rollback"]))
    def operator(self, data: st.DataObject, action: str) -> None:
        getattr(self, action)(data)

    def start(self, data: st.DataObject) -> None:
        dep_id = data.draw(st.sampled_from(self.deployments))
        self.begin_step("start")
        self._api("start", dep_id, {"pending"})

    def pause(self, data: st.DataObject) -> None:
        dep_id = data.draw(st.sampled_from(self.deployments))
        self.begin_step("pause")
        self._api("pause", dep_id, ACTIVE)

    def resume(self, data: st.DataObject) -> None:
        dep_id = data.draw(st.sampled_from(self.deployments))
        self.begin_step("resume")
        self._api("resume", dep_id, {"paused"})

    def cancel(self, data: st.DataObject) -> None:
        dep_id = data.draw(st.sampled_from(self.deployments))
        self.begin_step("cancel")
        self._api("cancel", dep_id, LIVE | {"pending"})

    def rollback(self, data: st.DataObject) -> None:
        dep_id = data.draw(st.sampled_from(self.deployments))
        self.begin_step("rollback")
        pre = self.step_pre["deps"][dep_id]
        any_completed = any(r.status in ("completed", "downloading", "installing")
                            for r in self.step_pre["records"].values() if r.deployment_id == dep_id)
        # a rollback deployment (made by an operator or by onFailureThreshold) is never rolled back
        allowed = pre.status in {"completed", "failed", "paused", "cancelled"} and any_completed and pre.rollback_of is None
        try:
            with self.store.tx() as s:
                rb, _ = svc.rollback(s, self.who, dep_id, self.now)
        except Conflict:
            assert not allowed, f"rollback refused from {pre.status}"
        else:
            assert allowed, f"rollback accepted from {pre.status} (any completed: {any_completed})"
            # every device where the change completed or is still being applied
            assert rb["status"] == "downloading" and rb["progress"]["total"] == sum(
                r.status in ("completed", "downloading", "installing")
                for r in self.step_pre["records"].values() if r.deployment_id == dep_id)
            self.deployments.append(rb["id"])

    def retry_device(self, data: st.DataObject) -> None:
        dep_id = data.draw(st.sampled_from(self.deployments))
        pre_records = [r for r in (self.prev or self.state())["records"].values() if r.deployment_id == dep_id]
        rec = data.draw(st.sampled_from(sorted(pre_records, key=lambda r: r.position)))
        self.begin_step("retry")
        d = self.step_pre["deps"][dep_id]
        r = self.step_pre["records"][rec.id]
        max_retries = self.dep_cfg(d)[0]
        self._retry_outcome = "ok"
        try:
            with self.store.tx() as s:
                svc.retry_device(s, self.who, dep_id, r.device_id, self.now)
        except RetriesExhausted:
            self._retry_outcome = "exhausted"
        except Conflict:
            self._retry_outcome = "conflict"
        except InvalidArgument as exc:  # pragma: no cover - a 400 other than RetriesExhausted is a bug
            raise AssertionError(f"unexpected 400: {exc}") from exc
        waiting = r.status == "pending" and r.job_id is not None and r.due_at is not None
        retryable = r.status in ("failed", "skipped") or waiting
        except_ok = d.status in LIVE | {"completed", "failed"}
        exhausted = r.status in ("failed", "skipped") and r.runs > 0 and r.runs - 1 >= max_retries
        ok = except_ok and retryable and not exhausted
        outcome = self._retry_outcome
        if outcome == "exhausted":
            assert except_ok and exhausted, (d.status, r.status, r.runs, max_retries)
        elif outcome == "conflict":
            assert not except_ok or not retryable, (d.status, r.status)
        else:
            assert ok, (d.status, r.status, r.runs, max_retries)
            self.retried_record = r.id
            self.expected_record = (r.id, {"status": "pending", "runs": r.runs})

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def check(self) -> None:
        if self.step == "init":
            return
        cur = self.state()
        prev = self.prev
        self.prev = cur
        by_dep: dict[str, list[m.DeploymentDevice]] = {}
        for r in cur["records"].values():
            by_dep.setdefault(r.deployment_id, []).append(r)
        jobs_per_record: dict[str, int] = {}
        for j in cur["jobs"].values():
            jobs_per_record[j.deployment_device_id] = jobs_per_record.get(j.deployment_device_id, 0) + 1

        for dep_id, d in cur["deps"].items():
            recs = by_dep.get(dep_id, [])
            counts = {k: sum(r.status == k for r in recs) for k in
                      ("pending", "downloading", "installing", "completed", "failed", "skipped")}
            # (1) counters equal the records
            assert (d.n_pending, d.n_running, d.n_completed, d.n_failed, d.n_skipped) == (
                counts["pending"], counts["downloading"] + counts["installing"], counts["completed"],
                counts["failed"], counts["skipped"]), (self.step, d.status, counts)
            assert d.n_pending + d.n_running + d.n_completed + d.n_failed + d.n_skipped == d.total == len(recs)
            # (5) batches
            assert 0 <= d.current_batch <= d.total_batches
            # (6) percentComplete
            progress = svc.deployment_dict(d)["progress"]
            assert progress["percentComplete"] == round_half_up_percent(counts["completed"] + counts["failed"],
                                                                        d.total)
            # (3) cancelled deployments keep nothing waiting
            if d.status == "cancelled":
                assert counts["pending"] == 0
            # records never run ahead of the current batch
            assert all(r.status in ("pending", "skipped") and r.attempts == 0
                       for r in recs if r.batch_number > d.current_batch)
            # (7) a record's attempts are its jobs
            for r in recs:
                assert r.attempts == jobs_per_record.get(r.id, 0)

        if prev is None:
            return
        pre = self.step_pre if self.step != "setup" else prev
        for dep_id, d in cur["deps"].items():
            before = pre["deps"].get(dep_id)
            if before is not None and before.status != d.status:
                event(f"{self.step}: {before.status} -> {d.status}")
            if before is not None and d.current_batch > max(1, before.current_batch):
                event("a later batch started")
            if before is not None and d.status == "paused" and before.status != "paused" and self.step == "reconcile":
                event("auto-paused")
            if before is not None:
                # (5) current_batch never decreases
                assert d.current_batch >= before.current_batch
                # cancellation is irreversible (it may only be rolled back); a rollback is final
                if before.status == "cancelled":
                    assert d.status in ("cancelled", "rollback")
                if before.status == "rollback":
                    assert d.status == "rollback"
                if before.status in ("completed", "failed") and d.status != before.status:
                    assert (self.step, d.status) in (("retry", "running"), ("rollback", "rollback"))

        # (2) terminal records stay terminal
        for rid, r in cur["records"].items():
            b = pre["records"].get(rid)
            if b is None:
                continue
            if b.status == "completed":
                assert r.status == "completed", (self.step, b.status, r.status)
            if b.status in ("failed", "skipped") and r.status != b.status:
                # only a manual retry, or a late result of the record's current attempt
                late = self.step == "report" and r.status in ("completed", "failed") and r.job_id == b.job_id
                assert late or (self.step == "retry" and self.retried_record == rid), (self.step, b.status, r.status)

        # (3) no job outside an engine pass on an active deployment
        new_jobs = set(cur["jobs"]) - set(pre["jobs"])
        if self.step != "reconcile":
            assert not new_jobs, f"{self.step} created jobs"
        else:
            assert new_jobs == {x.job_id for x in self.step_dispatched}
            dep_id = pre["dep"]
            before = pre["deps"][dep_id]
            if before.status in NO_DISPATCH:
                # only an operator's manual retry goes out while paused (seed 004)
                manual = {r.id for r in pre["records"].values() if r.deployment_id == dep_id and r.manual}
                allowed = [x for x in self.step_dispatched if before.status == "paused"
                           and cur["jobs"][x.job_id].deployment_device_id in manual]
                assert len(allowed) == len(self.step_dispatched), f"dispatched while {before.status}"
            after = cur["deps"][dep_id]
            for x in self.step_dispatched:
                r = cur["records"][cur["jobs"][x.job_id].deployment_device_id]
                assert r.batch_number <= after.current_batch and r.job_id == x.job_id
                assert pre["online"][x.device_id], "dispatched to an offline device"
                if (after.rollout_config or {}).get("respectMaintenanceWindows"):
                    windows = WINDOWS[self.device_windows[x.device_id]]
                    assert not windows or in_window(windows, self.now), "dispatched outside the window"
            self._check_thresholds(pre["deps"][dep_id], after, by_dep.get(dep_id, []))
            self._check_strategies(pre, pre["deps"][dep_id], after, by_dep.get(dep_id, []))

        # (7) finished jobs never change; reports move only what they may
        for jid, j in pre["jobs"].items():
            if j.state in JOB_TERMINAL:
                now_j = cur["jobs"][jid]
                assert (now_j.state, now_j.exit_code, now_j.output) == (j.state, j.exit_code, j.output)
        if self.step == "report":
            fresh: set[str] = set()
            for rep in pre["reports"]:
                job = pre["jobs"].get(rep.job_id)
                if job is not None and job.device_id == rep.device_id and job.state not in JOB_TERMINAL:
                    fresh.add(job.id)
            for jid, j in cur["jobs"].items():
                if jid not in fresh:
                    b = pre["jobs"].get(jid)
                    assert b is None or b.state == j.state, "a report moved a job it had no right to"
            for rid, r in cur["records"].items():
                b = pre["records"][rid]
                changed = (b.status, b.retry_count, b.job_id) != (r.status, r.retry_count, r.job_id)
                if changed:
                    assert b.job_id in fresh, "a stale or foreign report moved a record"
                    # a late failure of the attempt a pending record's retry follows is counted as
                    # run (runs, and retryCount, the number of the retry to come)
                    recount = b.status == r.status == "pending" and b.job_id == r.job_id
                    assert b.status in RUNNING or r.status in ("completed", "failed") or recount, \
                        "a late report may only finish"
            for dep_id, d in cur["deps"].items():
                b = pre["deps"][dep_id]
                assert (d.status, d.current_batch, d.version) == (b.status, b.current_batch, b.version)
        if self.expected_record is not None:
            rid, want = self.expected_record
            r = cur["records"][rid]
            for k, v in want.items():
                assert getattr(r, k) == v, (self.step, k, getattr(r, k), v)
        elif self.step == "report" and pre.get("single"):
            # a single report that is stale, duplicated or from another device changes no record
            for rid, r in cur["records"].items():
                b = pre["records"][rid]
                assert (b.status, b.retry_count, b.job_id) == (r.status, r.retry_count, r.job_id)

    def _check_thresholds(self, before: m.Deployment, after: m.Deployment, recs: list[m.DeploymentDevice]) -> None:
        """(4) after an engine pass: never a new batch with a threshold crossed."""
        _, count, percent = self.dep_cfg(after)
        failed = sum(r.status == "failed" for r in recs)
        finished = failed + sum(r.status == "completed" for r in recs)
        st_ = (after.rollout_config or {}).get("staggered") or {}
        crossed = threshold_crossed(failed, after.total, after.failure_baseline, count, percent,
                                    basis=st_.get("failureBasis") or "targets", finished=finished,
                                    finished_baseline=after.finished_baseline,
                                    min_finished=st_.get("minFinishedForPercent") or 0)
        if before.current_batch >= 1 and after.current_batch > before.current_batch:
            # The batches before the new one are all done, and no record in them could have
            # finished after the decision (a new batch only adds dispatched or skipped records).
            assert not crossed, "a batch started with a failure threshold crossed"
            assert before.status in ACTIVE
        batch_done = all(r.status in TERMINAL for r in recs if r.batch_number <= after.current_batch)
        if after.status in ACTIVE and after.current_batch >= 1 and batch_done:
            assert after.current_batch < after.total_batches
            assert not crossed, "batch done with a threshold crossed, but the deployment did not pause"
        if after.status == "completed" and before.status != "completed":
            assert not crossed


    def _check_strategies(self, pre: dict[str, Any], before: m.Deployment, after: m.Deployment,
                          recs: list[m.DeploymentDevice]) -> None:
        """The rollout strategies after an engine pass: the rate cap, the scheduled start, the
        success gate, and what a crossed threshold did."""
        rc = after.rollout_config or {}
        cap = rc.get("maxPerMinute")
        if cap and before.status in ACTIVE:
            recent = sum(1 for j in pre["jobs"].values()
                         if j.deployment_id == after.id and j.created_at > self.now - timedelta(minutes=1))
            assert len(self.step_dispatched) <= max(0, cap - recent), "maxPerMinute exceeded"
        if rc.get("startAt") and self.step_dispatched:
            assert self.now >= datetime.fromisoformat(rc["startAt"]), "dispatched before startAt"
        gate = ((rc.get("staggered") or {}).get("successGatePercent") if rc.get("type") == "staggered" else None)
        if gate and before.current_batch >= 1 and after.current_batch > before.current_batch:
            batch = [r for r in recs if r.batch_number == before.current_batch]
            met = sum(r.status == "completed" for r in batch) * 100 >= gate * len(batch)
            assert met or after.gate_passed_batch == before.current_batch, "a batch started below its success gate"
        if after.status in ("cancelled", "rollback") and before.status != after.status and after.rollback_of is None:
            assert rc.get("onFailureThreshold") in ("cancel", "rollback"), "the engine cancelled or rolled back"
            if after.status == "rollback":
                assert after.rolled_back_by in self.deployments
                rb = [r for r in self.state()["records"].values() if r.deployment_id == after.rolled_back_by]
                assert {r.device_id for r in rb} == {r.device_id for r in recs if r.status == "completed"}


# CONVOY_STATEFUL_EXAMPLES=1000 for a deeper run.
RolloutMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("CONVOY_STATEFUL_EXAMPLES", "80")), stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestRollout = RolloutMachine.TestCase


def test_template_db_is_migrated() -> None:
    store = Store.open(f"sqlite:///{_template_db()}", run_migrations=False)
    try:
        with store.read() as s:
            assert s.scalar(select(func.count()).select_from(m.Deployment)) == 0
    finally:
        store.close()


def _running_then_cancelled(max_retries: int) -> tuple[Store, Path, Principal, str, list[Dispatch]]:
    """Two online devices, immediate, dispatched and received, then cancelled while both are running."""
    store, directory = _fresh_store()
    boot = bootstrap(store, "acme", T0)
    with store.tx() as s:
        who = authenticate_api(s, boot["token"])
        for i in range(2):
            s.add(m.Device(id=str(uuid.UUID(int=i + 1)), client_id=boot["client_id"], machine_id=f"m{i}",
                           credential_hash=uuid.uuid4().hex, online=True, created_at=T0, updated_at=T0))
    with store.tx() as s:
        script = payloads.create_script(s, who, boot["client_id"], "x", "sh", "echo ok", "", "", T0)
        dep = svc.create(s, who, {"name": "x", "type": "script", "payload": {"scriptId": script["id"]},
                                  "targetType": "all",
                                  "rolloutConfig": {"retryConfig": {"maxRetries": max_retries}}}, T0)
    with store.tx() as s:
        svc.initialize(s, who, dep["id"], T0)
        svc.start(s, who, dep["id"], T0)
    with store.tx() as s:
        jobs = reconcile(s, dep["id"], T0).dispatched
    with store.tx() as s:  # both agents have the job: they are running it
        apply_reports(s, [Report(j.device_id, j.job_id, "received") for j in jobs], T0)
    with store.tx() as s:
        svc.cancel(s, who, dep["id"], T0)
    return store, directory, who, dep["id"], jobs


def test_report_after_cancel_updates_the_counters() -> None:
    """Regression: a device finishing after cancel moved its record but not the progress."""
    store, directory, who, dep_id, jobs = _running_then_cancelled(max_retries=0)
    try:
        with store.tx() as s:
            apply_reports(s, [Report(jobs[0].device_id, jobs[0].job_id, "completed", 0)], T0)
        with store.tx() as s:
            progress = svc.get(s, who, dep_id)["progress"]
        assert (progress["running"], progress["completed"], progress["percentComplete"]) == (1, 1, 50)
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)


def test_failure_after_cancel_is_final_even_with_retries_left() -> None:
    """Regression: a failed attempt in a cancelled deployment went back to pending for a retry
    that nothing would ever dispatch."""
    store, directory, who, dep_id, jobs = _running_then_cancelled(max_retries=3)
    try:
        with store.tx() as s:
            apply_reports(s, [Report(jobs[0].device_id, jobs[0].job_id, "failed", 1, reason="boom")], T0)
        with store.tx() as s:
            records, _ = svc.list_records(s, who, dep_id, status=None, batch_number=None, limit=None, offset=None)
            progress = svc.get(s, who, dep_id)["progress"]
        by_device = {r["deviceId"]: r for r in records}
        assert by_device[jobs[0].device_id]["status"] == "failed"
        assert (progress["pending"], progress["running"], progress["failed"]) == (0, 1, 1)
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)
