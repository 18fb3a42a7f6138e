"""Device keys and certificates at enrollment, on the real store (SQLite and PostgreSQL): the
certificate issued for the request's key, key proofs for a re-enrollment, the bearer-only
compatibility mode and `--require-device-certs` (docs/security.md, "Device certificates")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from agent.device_key import DeviceKey
from common import device_identity, pins
from common.errors import InvalidArgument, PermissionDenied, Unauthenticated
from coordinator.auth import check_device_certificate
from coordinator.device_certs import load_ca
from coordinator.service import enrollment
from coordinator.service.enrollment import DeviceIdentity, Facts, KeyRequest
from coordinator.store import models as m
from coordinator.store.db import Store
from tests.db.test_enrollment_store import T0, _setup, _token


def _enroll(store: Store, token: str, identity: DeviceIdentity, key: KeyRequest, machine_id: str = "m-1",
            proof: str = "") -> dict[str, str]:
    with store.tx() as s:
        return enrollment.enroll(s, token, machine_id, Facts(hostname="h"), [], "", "0.1.0", T0, 600.0,
                                 proof=proof, source="ipv4:10.0.0.9:1", key=key, identity=identity)


def _device(store: Store, device_id: str) -> m.Device:
    with store.read() as s:
        d = s.get(m.Device, device_id)
        assert d is not None
        return d


def _proof(old: DeviceKey, new: DeviceKey, machine_id: str = "m-1", at: int | None = None) -> KeyRequest:
    csr = new.csr(machine_id)
    t = int(T0.timestamp()) if at is None else at
    return KeyRequest(csr=csr, proof=old.sign(device_identity.proof_message(machine_id, csr, t)), proof_time=t)


def test_certificate_names_the_device_and_reenrolling_needs_the_old_key(store: Store, tmp_path: Path) -> None:
    client_id, who = _setup(store)
    token = _token(store, who, client_id)["token"]
    ident = DeviceIdentity(ca=load_ca(tmp_path))
    key = DeviceKey.generate()
    out = _enroll(store, token, ident, KeyRequest(csr=key.csr("m-1")))
    cert = x509.load_pem_x509_certificate(out["device_certificate"].encode())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == out["device_id"]
    assert ident.ca is not None and cert.issuer == ident.ca.cert.subject
    dev = _device(store, out["device_id"])
    assert dev.cert_sha256 == pins.fingerprint(pins.pem_certificates(out["device_certificate"].encode())[0])
    assert dev.cert_expires_at == T0 + timedelta(days=365)

    # the credential alone, a proof by another key, a stale proof: refused, nothing changes
    new = DeviceKey.generate()
    for why, request in [("no proof by that key", KeyRequest(csr=new.csr("m-1"))),
                         ("does not verify", _proof(DeviceKey.generate(), new)),
                         ("last 5 minutes", _proof(key, new, at=int(T0.timestamp()) - 400))]:
        with pytest.raises(PermissionDenied, match=why):
            _enroll(store, token, ident, request, proof=out["credential"])
    assert _device(store, out["device_id"]).cert_sha256 == dev.cert_sha256

    # the old key's proof: same device, the new key's certificate, the old one retired
    again = _enroll(store, token, ident, _proof(key, new))
    assert again["device_id"] == out["device_id"]
    assert _device(store, out["device_id"]).cert_sha256 != dev.cert_sha256
    with pytest.raises(Unauthenticated, match="not device .*'s current certificate"):
        check_device_certificate(_device(store, out["device_id"]), dev.cert_sha256 or "")


def test_bearer_only_is_explicit_and_can_be_required_away(store: Store, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    client_id, who = _setup(store)
    token = _token(store, who, client_id)["token"]
    ca = load_ca(tmp_path)
    with caplog.at_level("WARNING", logger="convoy.enrollment"):  # whatever level an earlier test left
        out = _enroll(store, token, DeviceIdentity(ca=ca), KeyRequest())
    assert out["device_certificate"] == "" and "bearer-only (compatibility mode)" in caplog.text
    dev = _device(store, out["device_id"])
    check_device_certificate(dev, "")  # compatibility mode: the credential is enough
    with pytest.raises(Unauthenticated, match="requires one"):
        check_device_certificate(dev, "", allow_bearer_only=False)

    with pytest.raises(InvalidArgument, match="requires a device key") as exc:
        _enroll(store, token, DeviceIdentity(ca=ca, require_certs=True), KeyRequest(), machine_id="m-2")
    assert exc.value.details.get("parameter") == "csr"
    with pytest.raises(InvalidArgument, match="csr is not a DER"):
        _enroll(store, token, DeviceIdentity(ca=ca), KeyRequest(csr=b"junk"), machine_id="m-3")

    # a credential alone never attaches a key by "renewing"; reinstalling with it does (the upgrade)
    with pytest.raises(PermissionDenied, match="bearer-only"):
        enrollment.renew_certificate(dev, DeviceKey.generate().csr("m-1"), DeviceIdentity(ca=ca), T0)
    up = _enroll(store, token, DeviceIdentity(ca=ca), KeyRequest(csr=DeviceKey.generate().csr("m-1")),
                 proof=out["credential"])
    assert up["device_id"] == out["device_id"] and up["device_certificate"]
    # plaintext (--insecure): no certificates, whatever the request carries
    plain = _enroll(store, token, DeviceIdentity(), KeyRequest(csr=DeviceKey.generate().csr("m-4")), machine_id="m-4")
    assert plain["device_certificate"] == "" and _device(store, plain["device_id"]).public_key is None


def test_replacement_token_takes_a_new_key_without_the_old_one(store: Store, tmp_path: Path) -> None:
    client_id, who = _setup(store)
    ident = DeviceIdentity(ca=load_ca(tmp_path))
    first = _enroll(store, _token(store, who, client_id)["token"], ident, KeyRequest(csr=DeviceKey.generate().csr("m-1")))
    replace = _token(store, who, client_id, device_id=first["device_id"], max_uses=1)["token"]
    out = _enroll(store, replace, ident, KeyRequest(csr=DeviceKey.generate().csr("m-9")), machine_id="m-9")
    assert out["device_id"] == first["device_id"] and out["device_certificate"] != first["device_certificate"]
