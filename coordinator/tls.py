"""The coordinator's TLS material: its own CA and server certificate, or the operator's.

    <data-dir>/                 0700
      tls/                      0700
        ca.pem   ca.key         the coordinator-made CA (10 years); ca.key 0600, never leaves here
        server.pem server.key   the server certificate (leaf, then the CA) and its key (0600)

The CA is made once, on the first `convoy admin bootstrap` or `convoy coordinator serve`. The
server certificate is (re)made on start when it is missing, expires within 30 days, or does not
cover the names asked for (`--tls-san`, default: this host's names and addresses, localhost,
127.0.0.1 and ::1). Keys are ECDSA P-256: small, fast to make, and served by every TLS stack
gRPC and Python use. With `--tls-cert/--tls-key` the operator's files are served as they are.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common import pins
from common.transport import ServerTLS

CA_LIFETIME = timedelta(days=3650)
_DNS = re.compile(r"(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?")
SERVER_LIFETIME = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)


class TlsConfigError(Exception):
    """The TLS settings or files cannot be used; the message says why."""


@dataclass(frozen=True)
class TlsMaterial:
    """What the listeners serve and what clients need to trust it."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None
    """The CA clients should trust (None: the operator's chain names none we can tell)."""
    ca_fingerprint: str
    server: ServerTLS


def secure_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it 0700: it holds keys or the store."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def tls_dir(data_dir: str | Path) -> Path:
    root = Path(data_dir).expanduser().resolve()
    secure_dir(root)
    return secure_dir(root / "tls")


def ensure_ca(data_dir: str | Path, now: datetime | None = None) -> Path:
    """The CA certificate file, made (with its key, 0600) if the data dir has none."""
    d = tls_dir(data_dir)
    ca_pem, ca_key = d / "ca.pem", d / "ca.key"
    if ca_pem.exists() and ca_key.exists():
        os.chmod(ca_key, 0o600)
        return ca_pem
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Convoy"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"Convoy coordinator CA {socket.gethostname()}")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write(ca_key, _key_pem(key), 0o600)
    _write(ca_pem, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return ca_pem


def ca_info(data_dir: str | Path) -> dict[str, str]:
    """`{"ca_file", "ca_fingerprint"}` of the data dir's CA (made if missing)."""
    path = ensure_ca(data_dir)
    return {"ca_file": str(path.resolve()), "ca_fingerprint": pins.bundle_fingerprint(path.read_bytes())}


def default_sans() -> list[str]:
    """This host's names and addresses, plus the loopback names every local client uses."""
    names = {"localhost", "127.0.0.1", "::1"}
    for host in {socket.gethostname(), socket.getfqdn()}:
        if host:
            names.add(host)
            try:
                for info in socket.getaddrinfo(host, None):
                    names.add(str(info[4][0]).split("%")[0])
            except OSError:
                pass
    return sorted(names)


def _general_names(sans: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for san in dict.fromkeys(s.strip() for s in sans if s.strip()):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            try:
                name = san.encode("idna").decode("ascii")
            except UnicodeError:
                name = ""
            if not _DNS.fullmatch(name):
                raise TlsConfigError(f"--tls-san {san!r} is neither an IP address nor a DNS name") from None
            out.append(x509.DNSName(name))
    return out


def _covers(cert: x509.Certificate, wanted: list[x509.GeneralName]) -> bool:
    try:
        have = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return False
    return set(wanted) <= have


def ensure_server_cert(data_dir: str | Path, sans: list[str], now: datetime | None = None) -> TlsMaterial:
    """The coordinator-made server certificate for `sans`, (re)issued by the CA when needed."""
    now = now or datetime.now(UTC)
    d = tls_dir(data_dir)
    ca_path = ensure_ca(data_dir, now)
    ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
    ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TlsConfigError(f"{d / 'ca.key'} is not an EC key made by Convoy")
    wanted = _general_names(sans)
    cert_path, key_path = d / "server.pem", d / "server.key"
    if cert_path.exists() and key_path.exists():
        current = x509.load_pem_x509_certificates(cert_path.read_bytes())
        leaf = current[0]
        if (leaf.issuer == ca_cert.subject and leaf.not_valid_after_utc - RENEW_BEFORE > now
                and _covers(leaf, wanted)):
            os.chmod(key_path, 0o600)
            return _material(cert_path, key_path, ca_path)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0] if sans else "convoy")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + SERVER_LIFETIME)
            .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write(key_path, _key_pem(key), 0o600)
    # The chain carries the CA, so a client pinning its fingerprint can find it (transport.discover_ca).
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM) + ca_path.read_bytes(), 0o644)
    return _material(cert_path, key_path, ca_path)


def _material(cert_path: Path, key_path: Path, ca_path: Path | None) -> TlsMaterial:
    chain = cert_path.read_bytes()
    certs = pins.pem_certificates(chain)
    if not certs:
        raise TlsConfigError(f"{cert_path} holds no PEM certificate")
    key = key_path.read_bytes()
    try:
        serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsConfigError(f"{key_path} is not an unencrypted PEM private key: {exc}") from exc
    if ca_path is not None:
        fp = pins.bundle_fingerprint(ca_path.read_bytes())
    else:
        # The operator's chain: its last certificate is the closest to the root that we were given.
        fp = pins.fingerprint(certs[-1])
    return TlsMaterial(cert_file=cert_path, key_file=key_path, ca_file=ca_path, ca_fingerprint=fp,
                       server=ServerTLS(cert_chain_pem=chain, key_pem=key))


def operator_material(cert_file: str, key_file: str) -> TlsMaterial:
    """The operator's certificate chain and key (`--tls-cert/--tls-key`), checked to match."""
    cert_path, key_path = Path(cert_file), Path(key_file)
    for p in (cert_path, key_path):
        if not p.is_file():
            raise TlsConfigError(f"{p}: no such file")
    material = _material(cert_path, key_path, None)
    leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if (leaf.public_key().public_bytes(serialization.Encoding.DER, spki)
            != key.public_key().public_bytes(serialization.Encoding.DER, spki)):
        raise TlsConfigError(f"{key_path} is not the key of the first certificate in {cert_path}")
    return material
