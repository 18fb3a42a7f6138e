"""The device's own key (ECDSA P-256), made at `convoy agent install`: its private half never
leaves the state dir (`device.key`, 0600); the coordinator signs a certificate for its public
half (`device.pem`), which every later agent call presents (mutual TLS).

`cryptography` is imported only here, and this module only by the installer: `agent run` hands
the PEM files to gRPC and never loads it (docs/security.md, "Cost").
"""

from __future__ import annotations

import base64
from dataclasses import dataclass


class DeviceKeyError(Exception):
    """The key file in the state dir cannot be used; the message says why."""


@dataclass(frozen=True)
class DeviceKey:
    pem: bytes
    """The private key, PKCS#8 PEM, unencrypted (the file is 0600 in a 0700 directory)."""

    @classmethod
    def generate(cls) -> DeviceKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))

    def _key(self) -> object:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            key = serialization.load_pem_private_key(self.pem, password=None)
        except (ValueError, TypeError) as exc:
            raise DeviceKeyError(f"the device key is not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise DeviceKeyError("the device key is not an ECDSA key")
        return key

    def csr(self, machine_id: str) -> bytes:
        """A PKCS#10 request (DER) for this key. The coordinator ignores its subject: it names
        the certificate after the device id and client it assigns."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = self._key()
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, machine_id[:64] or "convoy-device")])
        req = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        return req.public_bytes(serialization.Encoding.DER)

    @staticmethod
    def validity(cert_pem: bytes) -> tuple[str, str]:
        """(notBefore, notAfter) of a certificate, RFC 3339 UTC."""
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(cert_pem)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        return cert.not_valid_before_utc.strftime(fmt), cert.not_valid_after_utc.strftime(fmt)

    def sign(self, message: bytes) -> str:
        """The base64 ECDSA (SHA-256, DER) signature of `message`."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        key = self._key()
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return base64.b64encode(key.sign(message, ec.ECDSA(hashes.SHA256()))).decode()
