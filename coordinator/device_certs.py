"""Device certificates: the coordinator's CA signs one for the key each agent made at install.

    subject     CN=<device id>, O=<client id>
    SAN         URI urn:convoy:device:<device id>, URI urn:convoy:client:<client id>
    EKU         clientAuth only (it cannot serve TLS); validity one year (DEVICE_CERT_LIFETIME)

The CA is the data dir's own (tls/ca.pem, tls/ca.key; coordinator/tls.py), also when the
operator serves their own server certificate (`--tls-cert`): device certificates are checked
against it on the agent port, which no other CA can pass. Only ECDSA P-256 keys are accepted:
what the agent makes, and what every TLS stack gRPC uses takes as a client certificate.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common import pins
from common.errors import InvalidArgument

DEVICE_CERT_LIFETIME = timedelta(days=365)
MAX_CSR_BYTES = 4096


@dataclass(frozen=True)
class DeviceCA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    pem: bytes


@functools.lru_cache(maxsize=4)
def _load(ca_pem_path: str, _mtime_ns: int) -> DeviceCA:
    path = Path(ca_pem_path)
    pem = path.read_bytes()
    key = serialization.load_pem_private_key((path.parent / "ca.key").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path.parent / 'ca.key'} is not an EC key made by Convoy")
    return DeviceCA(cert=x509.load_pem_x509_certificate(pem), key=key, pem=pem)


def load_ca(data_dir: str | Path) -> DeviceCA:
    """The data dir's CA (made if missing), cached until its file changes."""
    from coordinator.tls import ensure_ca

    path = ensure_ca(data_dir)
    return _load(str(path), path.stat().st_mtime_ns)


def _spki_pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def request_key(csr_der: bytes) -> str:
    """The public key (SubjectPublicKeyInfo PEM) of a well-formed, self-signed P-256 request."""
    if len(csr_der) > MAX_CSR_BYTES:
        raise InvalidArgument(f"csr must be at most {MAX_CSR_BYTES} bytes", parameter="csr")
    try:
        csr = x509.load_der_x509_csr(csr_der)
        valid = csr.is_signature_valid
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:  # device input: any key type, any bytes
        raise InvalidArgument(f"csr is not a DER PKCS#10 certificate request for a supported key: {exc}",
                              parameter="csr") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidArgument("csr must be for an ECDSA P-256 key", parameter="csr")
    if not valid:
        raise InvalidArgument("csr signature does not verify: the request must be signed by its own key",
                              parameter="csr")
    return _spki_pem(key)


@dataclass(frozen=True)
class IssuedCert:
    pem: str
    sha256: str
    """`sha256:<hex>` of the certificate's DER: what agent calls must present."""
    not_after: datetime


def issue(ca: DeviceCA, public_key_pem: str, device_id: str, client_id: str, now: datetime,
          lifetime: timedelta = DEVICE_CERT_LIFETIME) -> IssuedCert:
    key = serialization.load_pem_public_key(public_key_pem.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    not_after = now + lifetime
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id),
                                     x509.NameAttribute(NameOID.ORGANIZATION_NAME, client_id)]))
            .issuer_name(ca.cert.subject).public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([
                x509.UniformResourceIdentifier(f"urn:convoy:device:{device_id}"),
                x509.UniformResourceIdentifier(f"urn:convoy:client:{client_id}")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return IssuedCert(pem=cert.public_bytes(serialization.Encoding.PEM).decode(), sha256=pins.fingerprint(der),
                      not_after=not_after)


def verify_proof(public_key_pem: str, message: bytes, signature: str) -> bool:
    """True when `signature` (base64 ECDSA/SHA-256) is the device key's signature of `message`."""
    try:
        sig = base64.b64decode(signature, validate=True)
        key = serialization.load_pem_public_key(public_key_pem.encode())
    except (binascii.Error, ValueError):
        return False
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
