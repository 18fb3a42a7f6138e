"""The pure per-device record machine and the deployment's `decide()` together, with no database.

A hypothesis stateful test drives one deployment through random configs and random event
sequences: operator actions (start, pause, resume, cancel, manual retry), agents acknowledging,
running, finishing, failing, skipping and honouring withdrawals, devices going on and offline,
heartbeats, time jumping, and engine passes that feed due records to `records.handle` and the
deployment's snapshot to `decide`, the way engine/rollout.py does over the store. Invariants
after every step:

- a completed record stays completed; failed and skipped records leave only by a manual retry
  or a late result of their current attempt;
- nothing is dispatched while the deployment is pending, paused, cancelled or finished;
- a change never runs twice for one attempt (a job runs at most once), and a record never has
  a new attempt while an earlier one may still run (not terminal and not withdrawn);
- the counters (computed from the records, as the writer's deltas must be) sum to the total;
- a batch never starts while a threshold is crossed, and a batch done with one crossed pauses.
- late arrivers (offlineDevices "wait"): a record offline at its first dispatch is not skipped
  before its wait ends, never waits past it, and the deployment never finishes while one waits;
  jobs held for a window (windowPolicy "wait") are never failed by silence before the window
  opened plus the timeout; a failed health check (verify) never makes a record completed.

Thousands of sequences run in seconds: CONVOY_MACHINE_EXAMPLES sets how many.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from common.errors import Conflict, RetriesExhausted
from common.states import JOB_TERMINAL, Desired, JobState
from common.states import RecordStatus as R
from coordinator.domain import records as rm
from coordinator.domain.batch_plan import plan_batches
from coordinator.domain.rollout import Kind, Snapshot, decide
from coordinator.domain.rollout_config import RolloutConfig
from coordinator.domain.states import ACTIVE, LIVE, RECORD_TERMINAL, check_action, record_allowed
from coordinator.domain.states import DeploymentStatus as D

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def crossed(failed: int, total: int, baseline: int, count: int | None, percent: float | None) -> bool:
    """The thresholds rule (percent of the total targets), written again here on purpose."""
    since = failed - baseline
    if count is not None and since >= count:
        return True
    return percent is not None and since > 0 and Fraction(since * 100, total) >= Fraction(str(percent))


rollout_configs = st.builds(
    lambda staggered, size, delay, count, percent, retries, backoff, windows, timeout: {
        "type": "staggered" if staggered else "immediate",
        **({"staggered": {"batchSize": size, "batchDelayMinutes": delay, "pauseOnFailureCount": count,
                          "pauseOnFailurePercent": percent}} if staggered else {}),
        "respectMaintenanceWindows": windows,
        "retryConfig": {"maxRetries": retries, "backoffMinutes": backoff},
        "installTimeoutMinutes": timeout,
    },
    st.booleans(), st.sampled_from([1, 2, 3, "50%"]), st.sampled_from([0, 1, 30]),
    st.sampled_from([None, 1, 2]), st.sampled_from([None, 20, 50]), st.integers(0, 2),
    st.sampled_from([[1], [0.5, 5]]), st.booleans(), st.sampled_from([None, 5]))


def _with_strategies(cfg: dict[str, Any], offline: float | None, window_wait: bool, verify: bool) -> dict[str, Any]:
    """The rollout strategies of this branch (verify, offlineDevices, windowPolicy) on top."""
    out = dict(cfg)
    if offline is not None:
        out["offlineDevices"] = {"policy": "wait", "waitMinutes": offline}
    if window_wait and cfg["respectMaintenanceWindows"]:
        out["windowPolicy"] = "wait"
        out["windowWaitMaxHours"] = 2
    if verify:
        out["verify"] = {"scriptId": "00000000-0000-4000-8000-000000000001", "timeoutMinutes": 1}
    return out


rollout_configs = st.builds(_with_strategies, rollout_configs, st.sampled_from([None, None, 3, 45]), st.booleans(),
                            st.booleans())


class Machine(RuleBasedStateMachine):
    @initialize(cfg=rollout_configs, n=st.integers(1, 6))
    def setup(self, cfg: dict[str, Any], n: int) -> None:
        self.raw = cfg
        self.cfg = RolloutConfig.parse(cfg)
        self.now = T0
        self.floor = T0
        self.devices = [f"dev-{i}" for i in range(n)]
        self.online = dict.fromkeys(self.devices, True)
        self.in_window = dict.fromkeys(self.devices, True)
        self.window_opens_in: dict[str, float | None] = dict.fromkeys(self.devices, 30.0)
        """Minutes until a device outside its window sees it open (None: not within the limit)."""
        self.verify_failed: set[str] = set()
        self.last_seen: dict[str, datetime | None] = dict.fromkeys(self.devices, T0)
        plan = plan_batches(self.devices, cfg)
        self.batch_sizes = [len(b) for b in plan]
        self.recs: dict[str, rm.Record] = {}
        self.batch_of: dict[str, int] = {}
        self.device_of: dict[str, str] = {}
        for number, batch in enumerate(plan, start=1):
            for dev in batch:
                rid = f"rec-{dev}"
                self.recs[rid] = rm.Record(id=rid, status=R.PENDING)
                self.batch_of[rid], self.device_of[rid] = number, dev
        self.jobs: dict[str, rm.Job] = {}
        self.job_record: dict[str, str] = {}
        self.executions: dict[str, int] = {}
        self.status = D.PENDING
        self.current_batch = 0
        self.baseline = 0
        self.batch_finished_at: datetime | None = None
        self.next_batch_at: datetime | None = None
        self.seq = 0
        self.step = "setup"
        self.before: dict[str, R] = {}
        self.allowed_leave: set[str] = set()

    # --- the in-memory adapter: what engine/rollout.py does over the store ---------------------

    def ctx(self) -> rm.Context:
        return rm.Context(config=self.cfg, now=self.now, live=self.status in LIVE, silence_floor=self.floor)

    def apply(self, rid: str, instructions: list[rm.Instruction]) -> None:
        rec = self.recs[rid]
        for ins in instructions:
            if isinstance(ins, rm.Move):
                assert record_allowed(ins.move, rec.status), (ins.move, rec.status)
                rec = self._set(rec, ins.to, ins.values)
            elif isinstance(ins, rm.SetRecord):
                rec = self._set(rec, rec.status, ins.values)
            elif isinstance(ins, rm.CreateJob):
                # paused: only an operator's manual retry goes out
                assert self.status in ACTIVE or (self.status == D.PAUSED and rec.manual), f"dispatched while {self.status}"
                for jid, job in self.jobs.items():
                    if self.job_record[jid] == rid:
                        assert job.state in JOB_TERMINAL or job.desired == Desired.WITHDRAWN, \
                            "a new attempt while an earlier one may still run"
                self.seq += 1
                jid = f"job-{self.seq}"
                self.jobs[jid] = rm.Job(id=jid, activity_at=self.now, hold_until=ins.hold_until)
                if ins.hold_until is not None:
                    event("a job held for its window")
                if rec.wait_until is not None:
                    event("a late arriver dispatched")
                self.job_record[jid] = rid
                rec = replace(rec, job_id=jid)
            elif isinstance(ins, rm.UpdateJob):
                job = self.jobs[ins.job_id]
                v = ins.values
                self.jobs[ins.job_id] = replace(job, state=JobState(v.get("state", job.state)),
                                                ran=bool(v.get("ran", job.ran)), activity_at=v.get("activity_at", job.activity_at))
            elif isinstance(ins, rm.Withdraw):
                self.jobs[ins.job_id] = replace(self.jobs[ins.job_id], desired=Desired.WITHDRAWN)
        self.recs[rid] = rec

    @staticmethod
    def _set(rec: rm.Record, status: R, v: dict[str, Any]) -> rm.Record:
        return rm.Record(id=rec.id, status=status, job_id=v.get("job_id", rec.job_id), runs=int(v.get("runs", rec.runs)),
                         attempts=int(v.get("attempts", rec.attempts)), error=str(v.get("error", rec.error)),
                         due_at=v.get("due_at", rec.due_at), manual=bool(v.get("manual", rec.manual)),
                         wait_until=v.get("wait_until", rec.wait_until))

    def counts(self) -> dict[R, int]:
        out = dict.fromkeys(R, 0)
        for r in self.recs.values():
            out[r.status] += 1
        return out

    def snapshot(self) -> Snapshot:
        c = self.counts()
        planned = sum(self.batch_sizes[:self.current_batch])
        later = len(self.recs) - planned
        th = self.cfg.thresholds
        return Snapshot(status=self.status, current_batch=self.current_batch, total_batches=len(self.batch_sizes),
                        total=len(self.recs), open_records=c[R.DOWNLOADING] + c[R.INSTALLING] + max(0, c[R.PENDING] - later),
                        downloading=c[R.DOWNLOADING], installing=c[R.INSTALLING], completed=c[R.COMPLETED],
                        failed=c[R.FAILED], failure_baseline=self.baseline, batch_finished_at=self.batch_finished_at,
                        next_batch_at=self.next_batch_at, batch_delay_minutes=th.batch_delay_minutes,
                        pause_on_failure_count=th.pause_on_failure_count,
                        pause_on_failure_percent=th.pause_on_failure_percent,
                        late_waiting=sum(1 for r in self.recs.values() if r.status == R.PENDING and r.wait_until))

    def work_due(self) -> None:
        dispatch = self.status in LIVE and self.current_batch > 0
        for rid, rec in sorted(self.recs.items()):
            if rec.due_at is None or rec.due_at > self.now:
                continue
            dev = self.device_of[rid]
            if rec.status == R.PENDING:
                if dispatch:
                    opens = self.window_opens_in[dev]
                    at = None if self.in_window[dev] or opens is None or not self.cfg.waits_for_window \
                        else self.now + timedelta(minutes=opens)
                    out = rm.handle(rec, rm.Due(online=self.online[dev], in_window=self.in_window[dev],
                                                paused=self.status == D.PAUSED, window_opens_at=at), self.ctx())
                    for ins in out:
                        if isinstance(ins, rm.Move) and ins.to == R.SKIPPED and ins.values.get("skip_reason") == rm.OFFLINE \
                                and self.cfg.offline_devices.waits and rec.attempts == 0 and not rec.manual:
                            assert rec.wait_until is not None and self.now >= rec.wait_until, \
                                "a late arriver skipped before its wait ended"
                    self.apply(rid, out)
            elif rec.status in (R.DOWNLOADING, R.INSTALLING) and rec.job_id:
                job = self.jobs[rec.job_id]
                self.apply(rid, rm.handle(rec, rm.SilenceCheck(job, self.last_seen[dev]), self.ctx()))
                if self.recs[rid].status not in (R.DOWNLOADING, R.INSTALLING) and job.hold_until is not None:
                    assert self.now >= job.hold_until + self.ctx().timeout, "a held job failed before its window"

    # --- rules -------------------------------------------------------------------------------

    def begin(self, name: str) -> None:
        self.step = name
        self.before = {rid: r.status for rid, r in self.recs.items()}
        self.allowed_leave = set()

    @rule()
    def reconcile(self) -> None:
        self.begin("reconcile")
        self.engine_pass()

    def engine_pass(self) -> None:
        """What the engine does after every event (the rules below that are events call it)."""
        if self.status not in LIVE:
            self.work_due()
            return
        for _ in range(len(self.batch_sizes) + 2):
            self.work_due()
            snap = self.snapshot()
            d = decide(snap, self.now)
            if d.batch_finished_at is not None and self.batch_finished_at is None:
                self.batch_finished_at = d.batch_finished_at
            if d.kind == Kind.START_BATCH:
                if d.batch > 1:
                    event("a later batch started")
                    c = self.counts()
                    assert not crossed(c[R.FAILED], len(self.recs), self.baseline,
                                       self.cfg.thresholds.pause_on_failure_count,
                                       self.cfg.thresholds.pause_on_failure_percent), "a batch started past a threshold"
                check_action("dispatch_batch", self.status)
                self.status, self.current_batch = D.DOWNLOADING, d.batch
                self.batch_finished_at = self.next_batch_at = None
                for rid, rec in self.recs.items():
                    if self.batch_of[rid] == d.batch and rec.status == R.PENDING:
                        self.recs[rid] = replace(rec, due_at=self.now)
                continue
            if d.kind == Kind.PAUSE:
                if self.status != D.PAUSED:
                    event("auto-paused")
                    check_action("auto_pause", self.status)
                    self.status = D.PAUSED
            elif d.kind == Kind.FINISH:
                event(f"finished {d.status}")
                self.status = D(d.status)
            elif d.kind == Kind.WAIT:
                self.next_batch_at = d.at
                if d.status:
                    self.status = D(d.status)
            elif d.status:
                self.status = D(d.status)
            break

    @rule()
    def start(self) -> None:
        self.begin("start")
        if self.status == D.PENDING:
            self.status = D.DOWNLOADING
            self.engine_pass()

    @rule()
    def pause(self) -> None:
        self.begin("pause")
        if self.status in ACTIVE:
            self.status = D.PAUSED

    @rule()
    def resume(self) -> None:
        self.begin("resume")
        if self.status == D.PAUSED:
            self.status = D.RUNNING
            self.baseline = self.counts()[R.FAILED]
            if self.batch_finished_at is not None:
                self.next_batch_at = max(self.now, self.cfg.thresholds.next_batch_due(self.batch_finished_at))
            self.engine_pass()

    @rule(i=st.integers(0, 7))
    def cancel(self, i: int) -> None:
        self.begin("cancel")
        if i == 0 and self.status in LIVE | {D.PENDING}:  # rarely: it ends the rollout
            ctx = self.ctx()
            for rid, rec in list(self.recs.items()):
                job = self.jobs[rec.job_id] if rec.job_id and rec.status == R.DOWNLOADING else None
                self.apply(rid, rm.handle(rec, rm.Cancelled(job=job), ctx))
            self.status = D.CANCELLED
            assert self.counts()[R.PENDING] == 0

    @rule(i=st.integers(0, 5))
    def manual_retry(self, i: int) -> None:
        self.begin("retry")
        rid = sorted(self.recs)[i % len(self.recs)]
        rec = self.recs[rid]
        if self.status not in LIVE | {D.COMPLETED, D.FAILED}:
            return
        try:
            instructions = rm.handle(rec, rm.ManualRetry(), self.ctx())
        except RetriesExhausted:
            assert rec.status in (R.FAILED, R.SKIPPED) and rec.runs - 1 >= self.cfg.retry.max_retries
            return
        except Conflict:
            assert rec.status not in (R.FAILED, R.SKIPPED)
            return
        assert rec.status in (R.FAILED, R.SKIPPED) or (rec.status == R.PENDING and rec.job_id)
        self.allowed_leave.add(rid)
        self.apply(rid, instructions)
        if self.status in (D.COMPLETED, D.FAILED):
            self.status = D.RUNNING
        self.batch_finished_at = self.next_batch_at = None

    def _report(self, jid: str, state: JobState) -> None:
        rid = self.job_record[jid]
        dev = self.device_of[rid]
        self.last_seen[dev] = self.now
        rec = self.recs[rid]
        if rec.job_id == jid and rec.status in RECORD_TERMINAL | {R.PENDING}:
            self.allowed_leave.add(rid)  # a late result of the current attempt may finish it
        reason = "verification: exit code 1" if jid in self.verify_failed else "r"
        self.apply(rid, rm.handle(rec, rm.Reported(job=self.jobs[jid], state=state, reason=reason), self.ctx()))
        if jid in self.verify_failed and self.recs[rid].job_id == jid:
            assert self.recs[rid].status != R.COMPLETED, "a failed health check completed the record"

    @precondition(lambda self: bool(self.jobs))
    @rule(i=st.integers(0, 50), outcome=st.sampled_from(["ack", "install", "complete", "fail", "skip", "honour",
                                                         "verify_fail"]))
    def agent(self, i: int, outcome: str) -> None:
        """A connected agent works on one of its jobs, as agent/runner.py does."""
        self.begin("agent")
        jid = sorted(self.jobs)[i % len(self.jobs)]
        job = self.jobs[jid]
        dev = self.device_of[self.job_record[jid]]
        if not self.online[dev] or job.state in JOB_TERMINAL:
            return
        if job.desired == Desired.WITHDRAWN:
            if job.state in (JobState.QUEUED, JobState.RECEIVED):
                self._report(jid, JobState.CANCELLED)
                return
            # already installing: it runs to its end and reports its real outcome
        if job.state == JobState.QUEUED:
            self._report(jid, JobState.RECEIVED)
            if outcome == "ack":
                return
        job = self.jobs[jid]
        if outcome == "skip" and job.state == JobState.RECEIVED:
            self._report(jid, JobState.SKIPPED)
            return
        if job.hold_until is not None and self.now < job.hold_until:
            return  # held until the device's window opens (agent/runner.py)
        if job.state == JobState.RECEIVED:
            self.executions[jid] = self.executions.get(jid, 0) + 1
            assert self.executions[jid] == 1, "a job ran twice"
            self._report(jid, JobState.INSTALLING)
        if outcome in ("complete", "honour"):
            self._report(jid, JobState.COMPLETED)
        elif outcome == "fail":
            self._report(jid, JobState.FAILED)
        elif outcome == "verify_fail":
            if self.cfg.verify is None:
                self._report(jid, JobState.COMPLETED)
            else:  # installed, but the health check failed: the agent reports the job failed
                self.verify_failed.add(jid)
                event("a health check failed")
                self._report(jid, JobState.FAILED)

    @precondition(lambda self: bool(self.jobs))
    @rule(outcomes=st.lists(st.sampled_from(["complete", "complete", "fail", "skip", "ack", "honour"]),
                            min_size=1, max_size=6))
    def agents(self, outcomes: list[str]) -> None:
        """Every connected agent works on its jobs at once."""
        for n, _jid in enumerate(sorted(self.jobs)):
            self.agent(n, outcomes[n % len(outcomes)])
        self.step = "reconcile"
        self.engine_pass()

    @precondition(lambda self: bool(self.jobs))
    @rule(outcomes=st.lists(st.sampled_from(["complete", "fail", "ack"]), min_size=1, max_size=3))
    def agents_again(self, outcomes: list[str]) -> None:
        self.agents(outcomes)

    @rule(outcomes=st.lists(st.sampled_from(["complete", "complete", "fail"]), min_size=1, max_size=3))
    def engine_and_agents(self, outcomes: list[str]) -> None:
        """The common case: the engine dispatches, the agents run it, the engine looks again."""
        self.begin("reconcile")
        self.engine_pass()
        if self.jobs:
            self.agents(outcomes)

    @rule(i=st.integers(0, 5))
    def toggle_online(self, i: int) -> None:
        self.begin("presence")
        dev = self.devices[i % len(self.devices)]
        self.online[dev] = not self.online[dev]
        if self.online[dev] and self.status in LIVE:
            # The hub on connect: the device's waiting late-arrival records are due now.
            for rid, rec in self.recs.items():
                if self.device_of[rid] == dev and rec.status == R.PENDING and rec.wait_until \
                        and rec.wait_until >= self.now:
                    self.recs[rid] = replace(rec, due_at=self.now)
            self.step = "reconcile"
            self.engine_pass()

    @rule(i=st.integers(0, 5))
    def toggle_window(self, i: int) -> None:
        self.begin("window")
        dev = self.devices[i % len(self.devices)]
        self.in_window[dev] = not self.in_window[dev]
        self.window_opens_in[dev] = [30.0, 1.0, None, 200.0][i % 4]

    @rule(minutes=st.sampled_from([0.5, 1, 2, 6, 31, 120]))
    def time_passes(self, minutes: float) -> None:
        """Time moves; connected agents heartbeat."""
        self.begin("time")
        self.now += timedelta(minutes=minutes)
        for dev in self.devices:
            if self.online[dev]:
                self.last_seen[dev] = self.now
        self.step = "reconcile"
        self.engine_pass()

    @rule(minutes=st.sampled_from([10, 60]))
    def coordinator_restart(self, minutes: float) -> None:
        """The coordinator was down: its downtime is nobody's silence."""
        self.begin("restart")
        self.now += timedelta(minutes=minutes)
        self.floor = self.now

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def records_only_move_as_allowed(self) -> None:
        for rid, r in self.recs.items():
            b = self.before.get(rid)
            if b == R.COMPLETED:
                assert r.status == R.COMPLETED, (self.step, b, r.status)
            if b in (R.FAILED, R.SKIPPED) and r.status != b:
                assert rid in self.allowed_leave, (self.step, b, r.status)

    @invariant()
    def counters_add_up(self) -> None:
        assert sum(self.counts().values()) == len(self.recs)
        assert 0 <= self.current_batch <= len(self.batch_sizes)
        for rid, r in self.recs.items():
            if self.batch_of[rid] > self.current_batch:
                assert r.status in (R.PENDING, R.SKIPPED, R.FAILED) and r.job_id is None

    @invariant()
    def finished_is_final(self) -> None:
        if self.status == D.CANCELLED:
            assert self.counts()[R.PENDING] == 0
        if self.status in (D.COMPLETED, D.FAILED):
            assert self.counts()[R.PENDING] == 0, "finished while a record is pending (a late arriver waiting?)"

    @invariant()
    def late_arrivers_wait_no_longer_than_allowed(self) -> None:
        if self.step != "reconcile" or self.status not in ACTIVE:
            return
        for r in self.recs.values():
            if r.status == R.PENDING and r.wait_until is not None:
                assert self.now <= r.wait_until, "a late arriver waits past its waitMinutes"
                assert r.wait_until - self.now <= timedelta(minutes=self.cfg.offline_devices.wait_minutes)

    @invariant()
    def crossed_threshold_pauses(self) -> None:
        if self.step != "reconcile" or self.status not in ACTIVE or self.current_batch == 0:
            return
        open_ = [r for rid, r in self.recs.items() if self.batch_of[rid] <= self.current_batch
                 and r.status not in RECORD_TERMINAL]
        if not open_ and self.current_batch < len(self.batch_sizes):
            th = self.cfg.thresholds
            assert not crossed(self.counts()[R.FAILED], len(self.recs), self.baseline,
                               th.pause_on_failure_count, th.pause_on_failure_percent), \
                "batch done past a threshold, but not paused"


Machine.TestCase.settings = settings(
    max_examples=int(os.environ.get("CONVOY_MACHINE_EXAMPLES", "600")), stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestRecordMachine = Machine.TestCase
