"""Enroll and ReportEnrollment batches on the real store (SQLite and PostgreSQL): a refused call
fails alone, the others commit, and token uses stay exact across concurrent batches."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from common.errors import Conflict, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from coordinator.auth import authenticate_device
from coordinator.service.enrollment_batch import (
    EnrollCall,
    Facts,
    ReportCall,
    enroll_batch,
    report_batch,
)
from coordinator.store import models as m
from coordinator.store.db import Store
from tests.db.test_enrollment_store import _setup, _token

T0 = datetime(2026, 1, 29, 9, 0, 0, tzinfo=UTC)


def _call(token: str, machine: str, proof: str = "", tags: list[str] | None = None) -> EnrollCall:
    return EnrollCall(token, machine, Facts(hostname=machine, os="linux"), tags or [], "", "0.1.0", proof=proof,
                      source="ipv4:10.1.1.1:4000")


def _batch(store: Store, calls: list[EnrollCall]) -> list[Any]:
    with store.tx() as s:
        return enroll_batch(s, calls, T0, 600.0)


def _count(store: Store, model: Any) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _uses(store: Store, token_id: str) -> int:
    with store.read() as s:
        row = s.get(m.EnrollmentToken, token_id)
        assert row is not None
        return row.uses


def test_refused_calls_fail_alone_and_the_rest_commit(store: Store) -> None:
    client_id, who = _setup(store)
    with store.tx() as s:
        g = m.Group(id="0b7f2d6e-1111-4a4a-9a9a-000000000001", client_id=client_id, name="g", created_at=T0)
        s.add(g)
    tok = _token(store, who, client_id, max_uses=4, group_ids=[g.id])
    first = _batch(store, [_call(tok["token"], "victim")])[0]
    assert isinstance(first, dict)
    out = _batch(store, [
        _call(tok["token"], "a", tags=["lab"]),
        _call("cvy_enr_wrong", "b"),
        _call(tok["token"], "victim"),                         # takeover without proof
        _call(tok["token"], "victim", proof=first["credential"]),  # a reinstall: the same device
        _call(tok["token"], ""),
        _call(tok["token"], "c"),                              # the token's fourth and last use
        _call(tok["token"], "d"),                              # used up
    ])
    kinds = [type(o).__name__ if not isinstance(o, dict) else "ok" for o in out]
    assert kinds == ["ok", "Unauthenticated", "PermissionDenied", "ok", "InvalidArgument", "ok", "Unauthenticated"]
    assert isinstance(out[2], PermissionDenied) and isinstance(out[4], InvalidArgument)
    assert isinstance(out[6], Unauthenticated) and "used up" in out[6].message
    assert out[3]["device_id"] == first["device_id"]
    assert _uses(store, tok["id"]) == 4
    assert _count(store, m.Device) == 3 and _count(store, m.DeviceEnrollment) == 4
    with store.read() as s:
        dev_a = authenticate_device(s, out[0]["credential"])
        assert (dev_a.tags, dev_a.hostname) == (["lab"], "a")
        with_group = set(s.scalars(select(m.GroupMember.device_id).where(m.GroupMember.group_id == g.id)))
        assert with_group == {first["device_id"], out[0]["device_id"], out[5]["device_id"]}
        rec = s.get(m.DeviceEnrollment, out[3]["enrollment_id"])
        assert rec is not None and rec.status == "pending" and rec.error_logs is None

    # ReportEnrollment in one batch: each call closes only its own device's record
    reports = report_batch_in_tx(store, [
        ReportCall(out[0]["credential"], out[0]["enrollment_id"], True, ["x"]),
        ReportCall(out[0]["credential"], out[3]["enrollment_id"], True, []),   # another device's record
        ReportCall("cvy_dev_nope", out[5]["enrollment_id"], True, []),
        ReportCall(out[5]["credential"], "not-a-uuid", True, []),
        ReportCall(out[5]["credential"], out[5]["enrollment_id"], False, ["2026-01-29T09:00:01Z: failed"]),
        ReportCall(out[5]["credential"], out[5]["enrollment_id"], False, ["again"]),   # a duplicate: accepted
        ReportCall(out[5]["credential"], out[5]["enrollment_id"], True, []),           # contradicts it
    ])
    assert reports[0] == "success" and isinstance(reports[1], NotFound) and isinstance(reports[2], Unauthenticated)
    assert isinstance(reports[3], InvalidArgument) and reports[4] == reports[5] == "error"
    assert isinstance(reports[6], Conflict)
    with store.read() as s:
        r0, r5 = s.get(m.DeviceEnrollment, out[0]["enrollment_id"]), s.get(m.DeviceEnrollment, out[5]["enrollment_id"])
        assert r0 is not None and (r0.status, r0.error_logs, r0.timeout_at) == ("success", None, None)
        assert r5 is not None and (r5.status, r5.error_logs) == ("error", ["2026-01-29T09:00:01Z: failed"])
        assert s.get(m.DeviceEnrollment, out[3]["enrollment_id"]).status == "pending"  # type: ignore[union-attr]


def report_batch_in_tx(store: Store, calls: list[ReportCall]) -> list[Any]:
    with store.tx() as s:
        return report_batch(s, calls, T0)


def test_concurrent_batches_never_take_more_uses_than_the_token_has(store: Store) -> None:
    """Two batches (two replicas, on PostgreSQL) race for a token's last 5 uses with 4 calls each:
    exactly 5 win, whichever batch they are in."""
    client_id, who = _setup(store)
    for round_ in range(2):
        tok = _token(store, who, client_id, max_uses=5)
        barrier = threading.Barrier(2)
        outcomes: list[Any] = []

        def run(side: int, token: str = tok["token"], b: threading.Barrier = barrier, r: int = round_,
                outcomes: list[Any] = outcomes) -> None:
            b.wait()
            outcomes.extend(_batch(store, [_call(token, f"race-{r}-{side}-{i}") for i in range(4)]))

        threads = [threading.Thread(target=run, args=(side,)) for side in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(outcomes) == 8
        assert sum(isinstance(o, dict) for o in outcomes) == 5
        assert all(isinstance(o, Unauthenticated) for o in outcomes if not isinstance(o, dict))
        assert _uses(store, tok["id"]) == 5
    assert _count(store, m.Device) == 10 and _count(store, m.DeviceEnrollment) == 10




def test_a_replacement_frees_the_old_machine_id_for_a_new_device_in_the_same_batch(store: Store) -> None:
    client_id, who = _setup(store)
    tok = _token(store, who, client_id)
    old = _batch(store, [_call(tok["token"], "old-disk")])[0]
    repl = _token(store, who, client_id, device_id=old["device_id"])
    out = _batch(store, [_call(repl["token"], "new-disk"), _call(tok["token"], "old-disk")])
    assert all(isinstance(o, dict) for o in out), out
    assert out[0]["device_id"] == old["device_id"] != out[1]["device_id"]
    with store.read() as s:
        moved = s.get(m.Device, old["device_id"])
        assert moved is not None and moved.machine_id == "new-disk"
    assert _count(store, m.Device) == 2


# --- calls refused before the rules take no part in the others' (adversarial review) ----------

def _keyed(token: str, machine_id: str, csr: bytes = b"") -> EnrollCall:
    return EnrollCall(token, machine_id, Facts(hostname=machine_id), [], "", "0.1.0", csr=csr, source="ipv4:10.0.0.7:1")


def _poisoned_csr(machine_id: str) -> bytes:
    """A well-formed request whose key algorithm OID is one cryptography does not know."""
    from agent.device_key import DeviceKey

    raw = bytearray(DeviceKey.generate().csr(machine_id))
    at = bytes(raw).find(bytes.fromhex("2a8648ce3d0201"))  # id-ecPublicKey
    raw[at + 6] = 0x05
    return bytes(raw)


@pytest.mark.parametrize("first", ["junk", "poisoned", "none under --require-device-certs"])
def test_a_call_refused_for_its_csr_fails_alone_and_leaves_the_others_alone(
        store: Store, tmp_path: Path, first: str) -> None:
    from agent.device_key import DeviceKey
    from coordinator.device_certs import load_ca
    from coordinator.service.enrollment_batch import DeviceIdentity

    client_id, who = _setup(store)
    last_use = _token(store, who, client_id, max_uses=1)["token"]
    ident = DeviceIdentity(ca=load_ca(tmp_path), require_certs=first.startswith("none"))
    bad = {"junk": b"junk", "poisoned": _poisoned_csr("m-a"), "none under --require-device-certs": b""}[first]
    with store.tx() as s:
        out = enroll_batch(s, [_keyed(last_use, "m-a", bad), _keyed(last_use, "m-a", DeviceKey.generate().csr("m-a"))],
                           T0, 600.0, ident)
    assert isinstance(out[0], InvalidArgument) and out[0].details.get("parameter") == "csr", out[0]
    # the token's only use and the machine id are the good call's: the bad one took neither
    assert isinstance(out[1], dict) and out[1]["device_certificate"].startswith("-----BEGIN CERTIFICATE"), out[1]
