"""Rollout strategies, part 2 (issue 13, items 3-verify, 6 and 7), as pure rules and one agent runner:

- `rolloutConfig.verify`: validation; the agent runs the check right after a successful install,
  in the same job; only a passing check completes it (reason `verification: …`, outputs kept).
- `rolloutConfig.offlineDevices` "wait": the record machine keeps an offline device's record
  pending until `waitMinutes` after its batch's dispatch, then skips it; `decide` finishes a batch
  without late arrivers but never the deployment.
- `rolloutConfig.windowPolicy` "wait": dispatched now, held until the window opens, the silence
  deadline starting with the window; `next_opening` finds when that is.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2
from hypothesis import given
from hypothesis import strategies as st

from agent.journal import JobState, Journal
from agent.runner import Runner
from agent.state import StateDir
from common.clock import FakeClock
from common.convoy.v1 import agent_pb2
from common.errors import InvalidArgument
from common.maintenance import next_opening
from common.states import RecordStatus as R
from coordinator.domain import records as rm
from coordinator.domain.rollout import Kind, Snapshot, decide
from coordinator.domain.rollout_config import RolloutConfig
from coordinator.domain.spec import validate_spec
from coordinator.domain.states import DeploymentStatus as D

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # a Monday
SCRIPT = "0b5c2f2e-8a61-4d0b-9c3e-6f2f4c1a7d10"
CHECK = "5d1c5a9e-3f0b-4c43-9d7e-2b8f1c0e6a11"


def body(**rollout: Any) -> dict[str, Any]:
    return {"name": "x", "type": "script", "payload": {"scriptId": SCRIPT}, "targetType": "all",
            "rolloutConfig": rollout}


def assert_400(rollout: dict[str, Any], parameter: str, fragment: str = "") -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_spec(body(**rollout))
    assert info.value.details["parameter"] == parameter, info.value.message
    assert info.value.message.startswith(f"{parameter}: ") and fragment in info.value.message, info.value.message


# --- validation and defaults -------------------------------------------------------------------

def test_defaults_store_nothing_new_and_parse_to_the_seed_behaviour() -> None:
    spec = validate_spec(body())
    assert set(spec["rolloutConfig"]) == {"type", "respectMaintenanceWindows", "retryConfig", "installTimeoutMinutes"}
    cfg = RolloutConfig.parse(spec["rolloutConfig"])
    assert cfg.verify is None and not cfg.offline_devices.waits and cfg.window_policy == "skip"
    assert not cfg.waits_for_window


def test_valid_fields_are_normalized() -> None:
    rc = validate_spec(body(verify={"scriptId": CHECK.upper()}, offlineDevices={"policy": "wait", "waitMinutes": 90},
                            respectMaintenanceWindows=True, windowPolicy="wait", windowWaitMaxHours=48))["rolloutConfig"]
    assert rc["verify"] == {"scriptId": CHECK, "timeoutMinutes": 10}
    assert rc["offlineDevices"] == {"policy": "wait", "waitMinutes": 90}
    assert rc["windowPolicy"] == "wait" and rc["windowWaitMaxHours"] == 48
    cfg = RolloutConfig.parse(rc)
    assert cfg.verify is not None and cfg.verify.script_id == CHECK and cfg.verify.timeout_minutes == 10
    assert cfg.offline_devices.wait_until(T0) == T0 + timedelta(minutes=90)
    assert cfg.waits_for_window and cfg.window_wait_max == timedelta(hours=48)
    assert validate_spec(body(offlineDevices={"policy": "skip"}))["rolloutConfig"]["offlineDevices"] == {"policy": "skip"}
    assert RolloutConfig.parse(validate_spec(body(respectMaintenanceWindows=True, windowPolicy="wait"))
                               ["rolloutConfig"]).window_wait_max == timedelta(hours=168)


@pytest.mark.parametrize(("rollout", "parameter", "fragment"), [
    ({"verify": {}}, "rolloutConfig.verify.scriptId", "required"),
    ({"verify": "x"}, "rolloutConfig.verify", "object"),
    ({"verify": {"scriptId": "nope"}}, "rolloutConfig.verify.scriptId", "not a UUID"),
    ({"verify": {"scriptId": CHECK, "timeoutMinutes": 0}}, "rolloutConfig.verify.timeoutMinutes", "greater than 0"),
    ({"verify": {"scriptId": CHECK, "timeoutMinutes": "5"}}, "rolloutConfig.verify.timeoutMinutes", "number"),
    ({"verify": {"scriptId": CHECK, "timeout": 5}}, "rolloutConfig.verify.timeout", "unknown field"),
    ({"offlineDevices": {"policy": "later"}}, "rolloutConfig.offlineDevices.policy", "skip, wait"),
    ({"offlineDevices": {"policy": "wait"}}, "rolloutConfig.offlineDevices.waitMinutes", "required"),
    ({"offlineDevices": {"policy": "wait", "waitMinutes": -1}}, "rolloutConfig.offlineDevices.waitMinutes", "greater"),
    ({"offlineDevices": {"policy": "wait", "waitMinutes": True}}, "rolloutConfig.offlineDevices.waitMinutes", "number"),
    ({"offlineDevices": {"policy": "skip", "waitMinutes": 5}}, "rolloutConfig.offlineDevices.waitMinutes", "only"),
    ({"offlineDevices": {"wait": 5}}, "rolloutConfig.offlineDevices.wait", "unknown field"),
    ({"windowPolicy": "wait"}, "rolloutConfig.windowPolicy", "respectMaintenanceWindows"),
    ({"respectMaintenanceWindows": True, "windowPolicy": "hold"}, "rolloutConfig.windowPolicy", "skip, wait"),
    ({"respectMaintenanceWindows": True, "windowPolicy": "skip", "windowWaitMaxHours": 5},
     "rolloutConfig.windowWaitMaxHours", "only allowed"),
    ({"respectMaintenanceWindows": True, "windowPolicy": "wait", "windowWaitMaxHours": 0},
     "rolloutConfig.windowWaitMaxHours", "greater than 0"),
    ({"respectMaintenanceWindows": True, "windowPolicy": "wait", "windowWaitMaxHours": 10_000},
     "rolloutConfig.windowWaitMaxHours", "at most"),
])
def test_bad_values_are_a_400_naming_the_field(rollout: dict[str, Any], parameter: str, fragment: str) -> None:
    assert_400(rollout, parameter, fragment)


# --- late arrivers in the record machine --------------------------------------------------------

WAIT = RolloutConfig.parse({"offlineDevices": {"policy": "wait", "waitMinutes": 30}})


def ctx(cfg: RolloutConfig, now: datetime = T0) -> rm.Context:
    return rm.Context(config=cfg, now=now)


def test_an_offline_device_waits_then_is_skipped() -> None:
    rec = rm.Record(id="r", status=R.PENDING, due_at=T0)
    [wait] = rm.handle(rec, rm.Due(online=False), ctx(WAIT))
    assert wait == rm.SetRecord({"wait_until": T0 + timedelta(minutes=30), "due_at": T0 + timedelta(minutes=30)})
    rec = rm.Record(id="r", status=R.PENDING, wait_until=T0 + timedelta(minutes=30))
    # woken early but still offline: keeps waiting, same deadline
    assert rm.handle(rec, rm.Due(online=False), ctx(WAIT, T0 + timedelta(minutes=10))) == [
        rm.SetRecord({"due_at": T0 + timedelta(minutes=30)})]
    [skip] = rm.handle(rec, rm.Due(online=False), ctx(WAIT, T0 + timedelta(minutes=30)))
    assert isinstance(skip, rm.Move) and skip.to == R.SKIPPED and skip.values["skip_reason"] == rm.OFFLINE
    assert skip.values["wait_until"] is None


def test_a_late_arriver_that_connects_in_time_is_dispatched() -> None:
    rec = rm.Record(id="r", status=R.PENDING, wait_until=T0 + timedelta(minutes=30))
    create, move = rm.handle(rec, rm.Due(online=True), ctx(WAIT, T0 + timedelta(minutes=12)))
    assert create == rm.CreateJob(attempt=1)
    assert isinstance(move, rm.Move) and move.move == "dispatch" and move.values["wait_until"] is None


def test_the_default_skips_at_once_and_retries_never_wait() -> None:
    [skip] = rm.handle(rm.Record(id="r", status=R.PENDING), rm.Due(online=False), ctx(RolloutConfig()))
    assert isinstance(skip, rm.Move) and skip.to == R.SKIPPED and "wait_until" not in skip.values
    retry = rm.Record(id="r", status=R.PENDING, attempts=1, runs=1, error="boom")
    [fail] = rm.handle(retry, rm.Due(online=False), ctx(WAIT))
    assert isinstance(fail, rm.Move) and fail.to == R.FAILED
    [manual] = rm.handle(rm.Record(id="r", status=R.PENDING, manual=True), rm.Due(online=False), ctx(WAIT))
    assert isinstance(manual, rm.Move) and manual.to == R.SKIPPED


def test_cancel_skips_a_waiting_record() -> None:
    rec = rm.Record(id="r", status=R.PENDING, wait_until=T0 + timedelta(minutes=30))
    [skip] = rm.handle(rec, rm.Cancelled(job=None), ctx(WAIT))
    assert isinstance(skip, rm.Move) and skip.to == R.SKIPPED and skip.values["wait_until"] is None


def snap(**kw: Any) -> Snapshot:
    base: dict[str, Any] = dict(status=D.DOWNLOADING, current_batch=1, total_batches=2, total=4, open_records=1,
                                downloading=0, installing=0, completed=3, failed=0, failure_baseline=0,
                                batch_finished_at=None, next_batch_at=None, batch_delay_minutes=0,
                                pause_on_failure_count=None, pause_on_failure_percent=None, late_waiting=1)
    base.update(kw)
    return Snapshot(**base)


def test_a_batch_does_not_wait_for_late_arrivers_but_the_deployment_does() -> None:
    assert decide(snap(), T0).kind == Kind.START_BATCH  # batch 1 done without its late arriver
    last = decide(snap(current_batch=2), T0)
    assert last.kind == Kind.NONE and last.status == D.RUNNING  # not finished: a late arriver may come
    assert decide(snap(current_batch=2, status=D.RUNNING), T0).kind == Kind.NONE
    assert decide(snap(current_batch=2, late_waiting=0, open_records=0), T0).kind == Kind.FINISH
    assert decide(snap(open_records=2), T0).kind == Kind.NONE  # a device still running holds the batch


# --- waiting for the window --------------------------------------------------------------------

HOLD = RolloutConfig.parse({"respectMaintenanceWindows": True, "windowPolicy": "wait", "installTimeoutMinutes": 20})


def test_outside_the_window_the_job_goes_out_held_and_its_deadline_starts_with_the_window() -> None:
    opens = T0 + timedelta(hours=5)
    create, move = rm.handle(rm.Record(id="r", status=R.PENDING), rm.Due(online=True, in_window=False,
                                                                         window_opens_at=opens), ctx(HOLD))
    assert create == rm.CreateJob(attempt=1, hold_until=opens)
    assert isinstance(move, rm.Move) and move.values["due_at"] == opens + timedelta(minutes=20)
    # a held job whose device went quiet is not failed before the window opened plus the timeout
    job = rm.Job(id="j", activity_at=T0, hold_until=opens)
    assert rm.silence_deadline(job, T0, None, timedelta(minutes=20)) == opens + timedelta(minutes=20)
    rec = rm.Record(id="r", status=R.DOWNLOADING, job_id="j", attempts=1)
    assert rm.handle(rec, rm.SilenceCheck(job, T0), ctx(HOLD, T0 + timedelta(hours=2))) == [
        rm.SetRecord({"due_at": opens + timedelta(minutes=20)})]


def test_no_window_within_the_limit_or_skip_policy_skips_as_today() -> None:
    [skip] = rm.handle(rm.Record(id="r", status=R.PENDING), rm.Due(online=True, in_window=False), ctx(HOLD))
    assert isinstance(skip, rm.Move) and skip.values["skip_reason"] == rm.OUTSIDE_WINDOW
    seed = RolloutConfig.parse({"respectMaintenanceWindows": True})
    [skip] = rm.handle(rm.Record(id="r", status=R.PENDING),
                       rm.Due(online=True, in_window=False, window_opens_at=T0 + timedelta(hours=1)), ctx(seed))
    assert isinstance(skip, rm.Move) and skip.values["skip_reason"] == rm.OUTSIDE_WINDOW


def test_next_opening() -> None:
    week = timedelta(days=7)
    assert next_opening([], T0, week) == T0
    assert next_opening(["daily 07:00-09:00 UTC"], T0, week) == T0  # open now
    assert next_opening(["daily 09:00-10:00 UTC"], T0, week) == T0.replace(hour=9)
    assert next_opening(["daily 06:00-07:00 UTC"], T0, week) == T0.replace(hour=6) + timedelta(days=1)
    sat = next_opening(["Sat 01:00-05:00 Europe/Berlin"], T0, week)
    assert sat == datetime(2026, 1, 10, 0, 0, tzinfo=UTC)  # 01:00 CET
    assert next_opening(["Sat 01:00-05:00 Europe/Berlin"], T0, timedelta(days=2)) is None
    assert next_opening(["Sat 01:00-05:00 Europe/Berlin", "daily 12:00-13:00 UTC"], T0, week) == T0.replace(hour=12)
    # daylight saving: 01:00 New York is 06:00 UTC in winter, 05:00 UTC in summer
    summer = datetime(2026, 7, 6, 8, 0, tzinfo=UTC)
    assert next_opening(["daily 01:00-03:00 America/New_York"], summer, week) == datetime(2026, 7, 7, 5, 0, tzinfo=UTC)


# --- the agent: verify after install, hold for the window --------------------------------------

def _job(job_id: str, payload: dict[str, Any], **kw: Any) -> agent_pb2.Job:
    st = struct_pb2.Struct()
    st.update(payload)
    return agent_pb2.Job(job_id=job_id, deployment_id=f"dep-{job_id}", attempt=1, type="script", payload=st, **kw)


async def _run(tmp_path: Path, job: agent_pb2.Job, windows: list[str], clock: FakeClock,
               steps: list[float] | None = None) -> tuple[Journal, list[agent_pb2.JobStatus]]:
    state = StateDir(tmp_path / "agent")
    journal = Journal(tmp_path / "journal", now=clock.now)
    seen: list[agent_pb2.JobStatus] = []

    async def fetch(_sha: str, _size: int | None) -> Path:
        raise AssertionError("no artifact here")

    runner = Runner(state=state, journal=journal, device_id="dev-1", emit=seen.append, fetch=fetch,
                    windows=lambda: windows, clock=clock)
    journal.record_received(job)
    runner.submit(job.job_id)
    for seconds in steps or []:
        await asyncio.sleep(0.2)
        clock.advance(seconds)
    for _ in range(200):
        entry = journal.get(job.job_id)
        if entry is not None and entry.terminal:
            break
        await asyncio.sleep(0.05)
    await runner.stop()
    return journal, seen


def test_agent_a_failing_check_fails_the_job_with_reason_verification_and_both_outputs(tmp_path: Path) -> None:
    job = _job("j1", {"interpreter": "sh", "body": "echo installed", "parameters": {},
                      "verify": {"interpreter": "sh", "body": "echo unhealthy; exit 3", "timeoutSeconds": 30}})
    journal, seen = asyncio.run(_run(tmp_path, job, [], FakeClock(T0)))
    entry = journal.get("j1")
    assert entry is not None and entry.state == JobState.FAILED
    assert entry.reason == "verification: exit code 3" and entry.exit_code == 3
    assert "installed" in entry.output and entry.output.rstrip().endswith("unhealthy")
    assert [s.state for s in seen] == ["installing", "failed"]


def test_agent_a_passing_check_completes_and_a_bad_check_payload_fails(tmp_path: Path) -> None:
    ok = _job("j2", {"interpreter": "sh", "body": "echo installed", "parameters": {},
                     "verify": {"interpreter": "sh", "body": "echo healthy", "timeoutSeconds": 30}})
    journal, _ = asyncio.run(_run(tmp_path / "a", ok, [], FakeClock(T0)))
    entry = journal.get("j2")
    assert entry is not None and entry.state == JobState.COMPLETED and "healthy" in entry.output
    bad = _job("j3", {"interpreter": "sh", "body": "true", "parameters": {},
                      "verify": {"interpreter": "cobol", "body": "x"}})
    journal, _ = asyncio.run(_run(tmp_path / "b", bad, [], FakeClock(T0)))
    entry = journal.get("j3")
    assert entry is not None and entry.state == JobState.FAILED and entry.reason.startswith("verification: unknown interpreter")


def test_agent_holds_a_job_until_its_window_opens(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    marker = tmp_path / "ran-at"
    job = _job("j4", {"interpreter": "sh", "body": f"date -u +%H > {marker}", "parameters": {}},
               respect_maintenance_windows=True, window_wait_max_seconds=24 * 3600)

    async def scenario() -> tuple[Journal, list[agent_pb2.JobStatus], bool]:
        task = asyncio.create_task(_run(tmp_path, job, ["daily 10:00-11:00 UTC"], clock))
        await asyncio.sleep(0.5)
        ran_early = marker.exists()
        clock.advance(3600)  # 09:00: still closed
        await asyncio.sleep(0.3)
        ran_early = ran_early or marker.exists()
        clock.advance(3600)  # 10:00: the window opens
        journal, seen = await task
        return journal, seen, ran_early

    journal, seen, ran_early = asyncio.run(scenario())
    entry = journal.get("j4")
    assert not ran_early
    assert entry is not None and entry.state == JobState.COMPLETED and marker.exists()
    assert [s.state for s in seen] == ["installing", "completed"]


def test_agent_skips_a_held_job_when_no_window_opens_within_the_limit(tmp_path: Path) -> None:
    job = _job("j5", {"interpreter": "sh", "body": "true", "parameters": {}},
               respect_maintenance_windows=True, window_wait_max_seconds=3600)
    journal, _ = asyncio.run(_run(tmp_path, job, ["Sat 01:00-05:00 UTC"], FakeClock(T0)))
    entry = journal.get("j5")
    assert entry is not None and entry.state == JobState.SKIPPED
    assert entry.reason.startswith("outside_maintenance_window")


# --- properties: any value in one of these fields validates or names that field -------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["scriptId", "timeoutMinutes", "policy", "waitMinutes", "x"]), inner, max_size=3),
    max_leaves=8,
)
fields = st.sampled_from([("verify",), ("verify", "scriptId"), ("verify", "timeoutMinutes"), ("offlineDevices",),
                          ("offlineDevices", "policy"), ("offlineDevices", "waitMinutes"), ("windowPolicy",),
                          ("windowWaitMaxHours",)])


@given(fields, json_values, st.booleans())
def test_one_field_either_validates_or_is_named(path: tuple[str, ...], value: Any, windows: bool) -> None:
    rollout: dict[str, Any] = {"respectMaintenanceWindows": windows, "windowPolicy": "wait" if windows else "skip",
                               "verify": {"scriptId": CHECK}, "offlineDevices": {"policy": "wait", "waitMinutes": 5}}
    node: Any = rollout
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        spec = validate_spec(body(**rollout))
    except InvalidArgument as exc:
        parameter = exc.details["parameter"]
        assert exc.message.startswith(f"{parameter}: ")
        assert parameter.startswith("rolloutConfig."), parameter
        return
    RolloutConfig.parse(spec["rolloutConfig"])  # whatever validates, parses


def test_a_late_failed_report_keeps_counting_the_scheduled_retry() -> None:
    """Found by extending the store-level stateful test: the attempt was failed by silence and its
    retry scheduled (retryCount 1); the device's late `failed` for that attempt keeps retryCount 1."""
    cfg = RolloutConfig.parse({"retryConfig": {"maxRetries": 2, "backoffMinutes": [5]}})
    rec = rm.Record(id="r", status=R.PENDING, job_id="j", runs=1, attempts=1, error="install timeout",
                    due_at=T0 + timedelta(minutes=5))
    job = rm.Job(id="j", state=JobState.INSTALLING, ran=True, activity_at=T0)
    out = rm.handle(rec, rm.Reported(job=job, state=JobState.FAILED, exit_code=3, output="boom"), ctx(cfg))
    [record_write] = [i for i in out if isinstance(i, rm.SetRecord)]
    assert record_write.values["retry_count"] == 1 and record_write.values["runs"] == 1
