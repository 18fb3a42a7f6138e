"""Enrollment tokens and enrollment on the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from common.errors import Conflict, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from common.ids import new_id
from common.secrets import hash_secret
from coordinator.auth import Principal, authenticate_device
from coordinator.service import enrollment, tenancy
from coordinator.service.enrollment import Facts
from coordinator.store import models as m
from coordinator.store.db import Store

T0 = datetime(2026, 1, 29, 9, 0, 0, tzinfo=UTC)


def _setup(store: Store) -> tuple[str, Principal]:
    out = tenancy.bootstrap(store, "Acme", T0, force=True)
    with store.tx() as s:
        token_id = s.scalar(select(m.ApiToken.id).where(m.ApiToken.token_hash == hash_secret(out["token"])))
    assert token_id
    return out["client_id"], Principal(token_id=token_id, role="admin", partner=True, client_ids=frozenset())


def _token(store: Store, who: Principal, client_id: str, **kw: Any) -> dict[str, str]:
    args = {"expires_in_s": 3600.0, "max_uses": 0, "group_ids": [], "name": "t", "now": T0, **kw}
    with store.tx() as s:
        return enrollment.create_token(s, who, client_id, **args)


def _enroll(store: Store, token: str, machine_id: str = "machine-1", now: datetime = T0,
            proof: str = "") -> dict[str, str]:
    with store.tx() as s:
        return enrollment.enroll(s, token, machine_id, Facts(hostname="h1", os="linux", cpu_count=4,
                                                             disks=[{"mountpoint": "/", "fstype": "ext4",
                                                                     "total_bytes": 10, "free_bytes": 5}]),
                                 ["lab"], "berlin", "0.1.0", now, 600.0, proof=proof, source="ipv4:10.9.9.9:1234")


def _count(store: Store, model: Any) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_token_is_stored_hashed_and_enroll_creates_pending_record(store: Store) -> None:
    client_id, who = _setup(store)
    tok = _token(store, who, client_id, max_uses=3)
    assert tok["token"].startswith("cvy_enr_")
    with store.read() as s:
        row = s.get(m.EnrollmentToken, tok["id"])
        assert row is not None and row.token_hash == hash_secret(tok["token"]) and row.uses == 0
        assert row.created_by == who.token_id and row.expires_at == T0 + timedelta(hours=1)

    out = _enroll(store, tok["token"])
    assert out["client_id"] == client_id and out["credential"].startswith("cvy_dev_")
    with store.read() as s:
        device = s.get(m.Device, out["device_id"])
        assert device is not None and device.credential_hash == hash_secret(out["credential"])
        assert (device.hostname, device.cpu_count, device.tags, device.site) == ("h1", 4, ["lab"], "berlin")
        rec = s.get(m.DeviceEnrollment, out["enrollment_id"])
        assert rec is not None and rec.status == "pending" and rec.error_logs is None
        assert rec.enrollment_token_id == tok["id"] and rec.user_id == who.token_id
        assert rec.enrollment_date == T0 and rec.timeout_at == T0 + timedelta(seconds=600)
        assert s.get(m.EnrollmentToken, tok["id"]).uses == 1  # type: ignore[union-attr]
        assert authenticate_device(s, out["credential"]).id == device.id


def test_reenroll_same_machine_keeps_device_and_rotates_credential(store: Store) -> None:
    client_id, who = _setup(store)
    tok = _token(store, who, client_id)
    first = _enroll(store, tok["token"], "machine-1")
    # a reinstall proves it is the device with the credential it holds
    second = _enroll(store, tok["token"], "machine-1", now=T0 + timedelta(minutes=5), proof=first["credential"])
    other = _enroll(store, tok["token"], "machine-2")
    assert first["device_id"] == second["device_id"] != other["device_id"]
    assert first["enrollment_id"] != second["enrollment_id"]
    assert first["credential"] != second["credential"]
    with store.read() as s:
        with pytest.raises(Unauthenticated):
            authenticate_device(s, first["credential"])
        assert authenticate_device(s, second["credential"]).id == first["device_id"]
        n = s.scalar(select(func.count()).select_from(m.DeviceEnrollment)
                     .where(m.DeviceEnrollment.device_id == first["device_id"]))
        assert n == 2
    assert _count(store, m.Device) == 2


@pytest.mark.parametrize("case", ["bad", "expired", "exhausted", "revoked"])
def test_rejected_token_leaves_nothing_behind(store: Store, case: str) -> None:
    client_id, who = _setup(store)
    tok = _token(store, who, client_id, max_uses=1, expires_in_s=60.0)
    token, now, expected = tok["token"], T0, ""
    if case == "bad":
        token, expected = "cvy_enr_not-a-real-token", "invalid enrollment token"
    elif case == "expired":
        now, expected = T0 + timedelta(seconds=61), "expired"
    elif case == "exhausted":
        _enroll(store, token, "first-machine")
        expected = "used up"
    else:
        with store.tx() as s:
            enrollment.revoke_token(s, who, client_id, tok["id"], T0)
        expected = "revoked"
    devices_before, records_before = _count(store, m.Device), _count(store, m.DeviceEnrollment)
    with pytest.raises(Unauthenticated) as info:
        _enroll(store, token, "machine-x", now=now)
    assert expected in info.value.message
    assert _count(store, m.Device) == devices_before
    assert _count(store, m.DeviceEnrollment) == records_before


def test_last_use_race_has_exactly_one_winner(store: Store) -> None:
    client_id, who = _setup(store)
    for round_ in range(3):
        tok = _token(store, who, client_id, max_uses=1)
        barrier = threading.Barrier(2)
        results: list[str] = []

        def install(machine: str, token: str = tok["token"], b: threading.Barrier = barrier,
                    results: list[str] = results) -> None:
            b.wait()
            try:
                _enroll(store, token, machine)
                results.append("won")
            except Unauthenticated:
                results.append("lost")

        threads = [threading.Thread(target=install, args=(f"race-{round_}-{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results) == ["lost", "won"]
        with store.read() as s:
            assert s.get(m.EnrollmentToken, tok["id"]).uses == 1  # type: ignore[union-attr]
    assert _count(store, m.Device) == 3 and _count(store, m.DeviceEnrollment) == 3


def test_report_is_guarded_and_scoped_to_own_device(store: Store) -> None:
    client_id, who = _setup(store)
    tok = _token(store, who, client_id)
    a = _enroll(store, tok["token"], "a")
    b = _enroll(store, tok["token"], "b")
    lines = ["2026-01-29T09:00:01Z: Starting deployment...", "2026-01-29T09:00:15Z: Deployment aborted"]
    with store.tx() as s:
        dev_b = authenticate_device(s, b["credential"])
        with pytest.raises(NotFound):  # b cannot close a's record
            enrollment.report_enrollment(s, dev_b, a["enrollment_id"], True, [], T0)
        with pytest.raises(InvalidArgument):
            enrollment.report_enrollment(s, dev_b, "nope", True, [], T0)
    with store.tx() as s:
        dev_a = authenticate_device(s, a["credential"])
        assert enrollment.report_enrollment(s, dev_a, a["enrollment_id"], False, lines, T0) == "error"
    with store.tx() as s:
        dev_a = authenticate_device(s, a["credential"])
        # a duplicate is harmless; a contradicting late report cannot move it
        assert enrollment.report_enrollment(s, dev_a, a["enrollment_id"], False, lines, T0) == "error"
        with pytest.raises(Conflict):
            enrollment.report_enrollment(s, dev_a, a["enrollment_id"], True, [], T0)
    with store.tx() as s:
        dev_b = authenticate_device(s, b["credential"])
        assert enrollment.report_enrollment(s, dev_b, b["enrollment_id"], True, ["x"], T0) == "success"
    with store.read() as s:
        ra, rb = s.get(m.DeviceEnrollment, a["enrollment_id"]), s.get(m.DeviceEnrollment, b["enrollment_id"])
        assert ra is not None and rb is not None
        assert (ra.status, ra.error_logs) == ("error", lines)
        assert (rb.status, rb.error_logs) == ("success", None)


def test_timeout_marks_only_overdue_pending_records(store: Store) -> None:
    client_id, who = _setup(store)
    tok = _token(store, who, client_id)
    old = _enroll(store, tok["token"], "old", now=T0)
    young = _enroll(store, tok["token"], "young", now=T0 + timedelta(seconds=500))
    done = _enroll(store, tok["token"], "done", now=T0)
    with store.tx() as s:
        enrollment.report_enrollment(s, authenticate_device(s, done["credential"]), done["enrollment_id"], True, [], T0)
    later = T0 + timedelta(seconds=601)
    with store.tx() as s:
        assert enrollment.expire_pending(s, later) == 1
    with store.tx() as s:
        assert enrollment.expire_pending(s, later) == 0
    with store.read() as s:
        r_old = s.get(m.DeviceEnrollment, old["enrollment_id"])
        assert r_old is not None and r_old.status == "error"
        assert r_old.error_logs == ["2026-01-29T09:10:01Z: Enrollment timed out: the agent never reported"]
        assert s.get(m.DeviceEnrollment, young["enrollment_id"]).status == "pending"  # type: ignore[union-attr]
        assert s.get(m.DeviceEnrollment, done["enrollment_id"]).status == "success"  # type: ignore[union-attr]
    with store.tx() as s:  # the agent reporting after its record timed out is refused
        with pytest.raises(Conflict):
            enrollment.report_enrollment(s, authenticate_device(s, old["credential"]), old["enrollment_id"],
                                         True, [], later)


def test_token_groups_scope_and_roles(store: Store) -> None:
    client_id, who = _setup(store)
    with store.tx() as s:
        other = tenancy.create_client(s, who, "Other", T0)["id"]
        g = m.Group(id=new_id(), client_id=client_id, name="berlin", created_at=T0)
        foreign = m.Group(id=new_id(), client_id=other, name="x", created_at=T0)
        s.add_all([g, foreign])
    with pytest.raises(NotFound):
        _token(store, who, client_id, group_ids=[foreign.id])
    with pytest.raises(InvalidArgument):
        _token(store, who, client_id, group_ids=["not-a-uuid"])
    tok = _token(store, who, client_id, group_ids=[g.id])
    out = _enroll(store, tok["token"])
    _enroll(store, tok["token"], proof=out["credential"])  # re-enrolling does not add the membership twice
    with store.read() as s:
        members = list(s.scalars(select(m.GroupMember.group_id).where(m.GroupMember.device_id == out["device_id"])))
        assert members == [g.id]

    operator = Principal(token_id=new_id(), role="operator", partner=False, client_ids=frozenset({client_id}))
    scoped = Principal(token_id=new_id(), role="admin", partner=False, client_ids=frozenset({client_id}))
    with store.tx() as s:
        with pytest.raises(PermissionDenied):
            enrollment.create_token(s, operator, client_id, 0, 0, [], "", T0)
        with pytest.raises(PermissionDenied):
            enrollment.list_tokens(s, scoped, other)
        listed = enrollment.list_tokens(s, scoped, "")  # the token's only client
        assert [t["id"] for t in listed] == [tok["id"]] and listed[0]["uses"] == 2
        assert "token" not in listed[0] and "token_hash" not in listed[0]
        with pytest.raises(NotFound):
            enrollment.revoke_token(s, scoped, client_id, new_id(), T0)


def _uses(store: Store, token_id: str) -> int:
    with store.read() as s:
        row = s.get(m.EnrollmentToken, token_id)
        assert row is not None
        return row.uses


def test_takeover_by_machine_id_is_refused_and_logged(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Any holder of a client's enrollment token, knowing a victim's machine id, must not get
    the victim's device (its id, jobs, credential): without the device's own credential the
    enrollment is refused, takes no use of the token, creates no record and is logged."""
    client_id, who = _setup(store)
    tok = _token(store, who, client_id)
    victim = _enroll(store, tok["token"], "victim-machine")
    records, uses = _count(store, m.DeviceEnrollment), _uses(store, tok["id"])
    other = _enroll(store, tok["token"], "attacker-machine")
    for proof in ("", "cvy_dev_guessed", other["credential"]):
        with caplog.at_level("WARNING", logger="convoy.enrollment"), pytest.raises(PermissionDenied) as info:
            _enroll(store, tok["token"], "victim-machine", proof=proof)
        assert victim["device_id"] in info.value.message and "convoy devices replace" in info.value.message
    assert sum("enrollment refused" in r.message and "10.9.9.9" in r.message for r in caplog.records) == 3
    assert _count(store, m.DeviceEnrollment) == records + 1 and _uses(store, tok["id"]) == uses + 1
    with store.read() as s:  # the victim keeps working
        assert authenticate_device(s, victim["credential"]).id == victim["device_id"]


def test_replacement_token_reenrolls_exactly_one_device_once(store: Store) -> None:
    client_id, who = _setup(store)
    tok = _token(store, who, client_id)
    old = _enroll(store, tok["token"], "old-disk")
    bystander = _enroll(store, tok["token"], "bystander")
    with pytest.raises(InvalidArgument):
        _token(store, who, client_id, device_id=old["device_id"], max_uses=2)
    with pytest.raises(InvalidArgument):
        _token(store, who, client_id, device_id=old["device_id"], expires_in_s=0.0)
    with pytest.raises(NotFound):
        _token(store, who, client_id, device_id=new_id())
    repl = _token(store, who, client_id, device_id=old["device_id"])
    # it cannot be used to take over another device
    with pytest.raises(Conflict):
        _enroll(store, repl["token"], "bystander")
    # the machine was rebuilt (new disk, new machine id): the same device, its history kept
    new = _enroll(store, repl["token"], "new-disk")
    assert new["device_id"] == old["device_id"]
    with store.read() as s:
        device = s.get(m.Device, old["device_id"])
        assert device is not None and device.machine_id == "new-disk"
        with pytest.raises(Unauthenticated):
            authenticate_device(s, old["credential"])
        assert authenticate_device(s, bystander["credential"]).id == bystander["device_id"]
        n = s.scalar(select(func.count()).select_from(m.DeviceEnrollment)
                     .where(m.DeviceEnrollment.device_id == old["device_id"]))
        assert n == 2
    with pytest.raises(Unauthenticated, match="used up"):
        _enroll(store, repl["token"], "new-disk", proof=new["credential"])


def test_a_success_report_sent_with_enroll_and_its_correction(store: Store) -> None:
    """One call per install: `report_success` writes the record `success` (error_logs null) in the
    Enroll's own transaction; its device may correct it to `error` with its lines until the
    enrollment timeout, then never; the timeout sweep neither touches it nor counts it."""
    client_id, who = _setup(store)
    tok = _token(store, who, client_id)
    lines = ["2026-01-29T09:00:01Z: Starting deployment...", "2026-01-29T09:00:02Z: Deployment aborted"]

    def enroll(machine_id: str) -> dict[str, str]:
        with store.tx() as s:
            return enrollment.enroll(s, tok["token"], machine_id, Facts(hostname="h"), [], "", "0.1.0", T0, 600.0,
                                     report_success=True)

    def report(out: dict[str, str], success: bool, now: datetime) -> str:
        with store.tx() as s:
            return enrollment.report_enrollment(s, authenticate_device(s, out["credential"]), out["enrollment_id"],
                                                success, lines, now)

    def record(out: dict[str, str]) -> tuple[str, Any, datetime]:
        with store.read() as s:
            r = s.get(m.DeviceEnrollment, out["enrollment_id"])
            assert r is not None
            return r.status, r.error_logs, r.updated_at

    ok, corrected, late = enroll("ok"), enroll("corrected"), enroll("late")
    assert record(ok) == ("success", None, T0)
    assert report(ok, True, T0 + timedelta(seconds=1)) == "success"  # a duplicate: no write
    assert record(ok) == ("success", None, T0)

    assert report(corrected, False, T0 + timedelta(seconds=2)) == "error"
    assert record(corrected) == ("error", lines, T0 + timedelta(seconds=2))
    assert report(corrected, False, T0 + timedelta(seconds=3)) == "error"
    with pytest.raises(Conflict):  # corrected once; it never goes back
        report(corrected, True, T0 + timedelta(seconds=3))

    with store.tx() as s:  # the sweep ends the correction time and times nothing out
        assert enrollment.expire_pending(s, T0 + timedelta(seconds=600)) == 0
    with pytest.raises(Conflict):
        report(late, False, T0 + timedelta(seconds=601))
    assert record(late) == ("success", None, T0)
    with store.read() as s:
        assert s.get(m.DeviceEnrollment, late["enrollment_id"]).timeout_at is None  # type: ignore[union-attr]
