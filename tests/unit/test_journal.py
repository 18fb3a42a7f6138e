"""The per-job journal: durable, deduplicating, recovering after a crash, forgetting once acked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf import struct_pb2

from agent.journal import RESTARTED_REASON, JobState, Journal, JournalError
from common.convoy.v1 import agent_pb2


def job(job_id: str = "j1", deployment: str = "d1", **payload: object) -> agent_pb2.Job:
    s = struct_pb2.Struct()
    s.update(payload or {"interpreter": "sh", "body": "true"})
    return agent_pb2.Job(job_id=job_id, deployment_id=deployment, attempt=2, type="script", payload=s,
                         timeout_seconds=30, respect_maintenance_windows=True)


def test_received_is_durable_and_a_second_delivery_is_refused(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    assert j.record_received(job()) is True
    assert j.record_received(job()) is False
    on_disk = json.loads((tmp_path / "j1.json").read_text())
    assert on_disk["state"] == "received" and on_disk["attempt"] == 2
    assert on_disk["payload"] == {"interpreter": "sh", "body": "true"}
    # A fresh process reading the same directory knows the job too.
    again = Journal(tmp_path)
    assert again.record_received(job()) is False
    assert again.get("j1") is not None and again.get("j1").respect_maintenance_windows  # type: ignore[union-attr]
    assert not list(tmp_path.glob(".*")), "no temp files left behind"


def test_states_move_forward_only(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.record_received(job())
    j.update("j1", JobState.INSTALLING)
    j.update("j1", JobState.COMPLETED, exit_code=0, output="ok\n")
    with pytest.raises(JournalError, match="illegal move completed -> installing"):
        j.update("j1", JobState.INSTALLING)
    with pytest.raises(JournalError):
        j.update("nope", JobState.INSTALLING)


def test_unacked_statuses_carry_exit_code_output_and_reason(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.record_received(job("a"))
    j.record_received(job("b", "d2"))
    j.update("a", JobState.INSTALLING)
    j.update("a", JobState.FAILED, exit_code=3, output="boom", reason="exit code 3")
    statuses = {s.job_id: s for s in Journal(tmp_path).unacked_statuses()}
    assert statuses["a"].state == "failed" and statuses["a"].exit_code == 3
    assert statuses["a"].output == "boom" and statuses["a"].reason == "exit code 3"
    assert statuses["b"].state == "received" and not statuses["b"].HasField("exit_code")


def test_output_is_bounded_to_64_kib(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.record_received(job())
    j.update("j1", JobState.INSTALLING)
    j.update("j1", JobState.COMPLETED, output="x" * 200_000 + "END")
    out = j.get("j1").output  # type: ignore[union-attr]
    assert len(out.encode()) == 64 * 1024 and out.endswith("END")


def test_ack_leaves_a_tombstone_that_still_refuses_redelivery(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.record_received(job())
    assert j.ack("j1") is False, "a non-terminal job cannot be acknowledged"
    j.update("j1", JobState.INSTALLING)
    j.update("j1", JobState.COMPLETED, exit_code=0, output="lots of output")
    assert j.ack("j1") is True
    assert j.unacked_statuses() == []
    fresh = Journal(tmp_path)
    assert fresh.record_received(job()) is False
    tomb = fresh.get("j1")
    assert tomb is not None and tomb.acked and tomb.state == "completed" and tomb.output == "" and tomb.payload == {}


def test_recover_fails_interrupted_jobs_and_keeps_received_ones_runnable(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    for name in ("dl", "inst", "queued", "done"):
        j.record_received(job(name, deployment=name))
    j.update("dl", JobState.DOWNLOADING)
    j.update("inst", JobState.INSTALLING)
    j.update("done", JobState.INSTALLING)
    j.update("done", JobState.COMPLETED, exit_code=0)

    after_crash = Journal(tmp_path)
    failed = {e.job_id for e in after_crash.recover()}
    assert failed == {"dl", "inst"}
    for name in ("dl", "inst"):
        e = after_crash.get(name)
        assert e is not None and e.state == "failed" and e.reason == RESTARTED_REASON
    assert [e.job_id for e in after_crash.runnable()] == ["queued"]
    assert after_crash.get("done").state == "completed"  # type: ignore[union-attr]


def test_old_tombstones_are_pruned(tmp_path: Path) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    j = Journal(tmp_path, now=lambda: now[0])
    j.record_received(job())
    j.update("j1", JobState.SKIPPED, reason="outside_maintenance_window")
    j.ack("j1")
    now[0] += timedelta(days=31)
    j.recover()
    assert not (tmp_path / "j1.json").exists()


def test_a_job_id_that_cannot_name_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JournalError):
        Journal(tmp_path).record_received(job("../../etc/passwd"))
