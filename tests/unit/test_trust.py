"""Fingerprints, the coordinator-made CA and certificates, and the plaintext rule (pure or local
files only; the network side is tests/e2e/test_tls.py)."""

from __future__ import annotations

import _ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from common import pins, transport
from coordinator.config import Settings, check_insecure, is_loopback
from coordinator.tls import TlsConfigError, ca_info, ensure_server_cert, operator_material


def test_fingerprints_normalise_and_reject_garbage() -> None:
    hexd = "ab" * 32
    assert pins.parse_fingerprint(f"sha256:{hexd.upper()}") == f"sha256:{hexd}"
    assert pins.parse_fingerprint(":".join(hexd[i:i + 2] for i in range(0, 64, 2))) == f"sha256:{hexd}"
    assert pins.parse_fingerprint(hexd) == f"sha256:{hexd}"
    for bad in ("", "sha256:", "sha256:abc", f"md5:{hexd}", f"sha256:{'zz' * 32}", hexd + "00"):
        with pytest.raises(ValueError):
            pins.parse_fingerprint(bad)


def test_der_encoding_constant_matches_the_ssl_module() -> None:
    assert transport._ENCODING_DER == _ssl.ENCODING_DER


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_ca_and_server_certificate_are_made_once_with_private_modes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    info = ca_info(data)
    ca_pem = Path(info["ca_file"]).read_bytes()
    assert info["ca_fingerprint"] == pins.bundle_fingerprint(ca_pem)
    mat = ensure_server_cert(data, ["convoy.example", "10.1.2.3", "127.0.0.1"])
    assert _mode(data) == 0o700 and _mode(data / "tls") == 0o700
    assert _mode(data / "tls" / "ca.key") == 0o600 and _mode(mat.key_file) == 0o600
    chain = x509.load_pem_x509_certificates(mat.cert_file.read_bytes())
    assert len(chain) == 2 and pins.fingerprint(pins.pem_certificates(mat.cert_file.read_bytes())[1]) == info["ca_fingerprint"]
    leaf = chain[0]
    leaf.verify_directly_issued_by(chain[1])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "convoy.example" in sans.get_values_for_type(x509.DNSName)
    assert {str(a) for a in sans.get_values_for_type(x509.IPAddress)} == {"10.1.2.3", "127.0.0.1"}

    # the same names: the same certificate; a new name: a new certificate from the same CA
    again = ensure_server_cert(data, ["convoy.example", "127.0.0.1"])
    assert again.server.cert_chain_pem == mat.server.cert_chain_pem
    wider = ensure_server_cert(data, ["other.example"])
    assert wider.server.cert_chain_pem != mat.server.cert_chain_pem and wider.ca_fingerprint == info["ca_fingerprint"]
    assert ca_info(data) == info  # the CA is never remade

    # expiring within 30 days: renewed
    soon = datetime.now(UTC) + timedelta(days=340)
    renewed = ensure_server_cert(data, ["other.example"], now=soon)
    assert renewed.server.cert_chain_pem != wider.server.cert_chain_pem


def test_operator_certificate_must_match_its_key(tmp_path: Path) -> None:
    a = ensure_server_cert(tmp_path / "a", ["a.example"])
    b = ensure_server_cert(tmp_path / "b", ["b.example"])
    mine = operator_material(str(a.cert_file), str(a.key_file))
    assert mine.ca_file is None and mine.ca_fingerprint == ca_info(tmp_path / "a")["ca_fingerprint"]
    with pytest.raises(TlsConfigError, match="is not the key"):
        operator_material(str(a.cert_file), str(b.key_file))
    with pytest.raises(TlsConfigError, match="no such file"):
        operator_material(str(tmp_path / "missing.pem"), str(a.key_file))


@pytest.mark.parametrize(("listen", "loop"), [
    ("127.0.0.1:7443", True), ("127.9.9.9:0", True), ("[::1]:7443", True), ("localhost:7443", True),
    ("0.0.0.0:7443", False), (":7443", False), ("[::]:7443", False), ("10.0.0.5:7443", False),
    ("convoy.example:7443", False),
])
def test_loopback_addresses(listen: str, loop: bool) -> None:
    assert is_loopback(listen) is loop


def test_insecure_only_on_loopback() -> None:
    assert check_insecure(Settings()) is None
    assert check_insecure(Settings(insecure=True)) is None
    assert check_insecure(Settings(insecure=True, http_listen="")) is None
    refusal = check_insecure(Settings(insecure=True, grpc_listen="0.0.0.0:7443"))
    assert refusal and "--grpc-listen 0.0.0.0:7443" in refusal
    refusal = check_insecure(Settings(insecure=True, require_device_certs=True))
    assert refusal and "--require-device-certs" in refusal
    refusal = check_insecure(Settings(insecure=True, http_listen="10.0.0.5:7080"))
    assert refusal and "--http-listen" in refusal
    assert check_insecure(Settings(insecure=True, tls_cert="c", tls_key="k"))


def test_bad_names_are_refused(tmp_path: Path) -> None:
    for bad in ("foo bar", "a..b", "-", "x/y"):
        with pytest.raises(TlsConfigError, match="neither an IP address nor a DNS name"):
            ensure_server_cert(tmp_path, [bad])
    ok = ensure_server_cert(tmp_path, ["*.convoy.example", "büro.example", "fe80::1"])
    leaf = x509.load_pem_x509_certificates(ok.cert_file.read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "xn--bro-hoa.example" in names.get_values_for_type(x509.DNSName)
    assert ok.cert_file.is_absolute()


def test_device_certificate_renewal_is_due_after_two_thirds_of_its_validity() -> None:
    from datetime import UTC, datetime

    from agent import renewal
    from agent.state import AgentIdentity

    ident = AgentIdentity(server="s:1", device_id="d", client_id="c", machine_id="m",
                          cert_not_before="2026-01-01T00:00:00Z", cert_not_after="2026-01-31T00:00:00Z")
    assert not renewal.due(ident, datetime(2026, 1, 20, 23, 59, tzinfo=UTC))
    assert renewal.due(ident, datetime(2026, 1, 21, 0, 0, tzinfo=UTC))
    assert not renewal.due(AgentIdentity(server="s:1", device_id="d", client_id="c", machine_id="m"),
                           datetime(2030, 1, 1, tzinfo=UTC))  # bearer-only: nothing to renew
