"""Certificate fingerprints and PEM handling shared by the CLI, the agent and the coordinator.

A fingerprint is `sha256:<64 lowercase hex>` of a certificate's DER bytes, the form
`convoy admin bootstrap` and `convoy tokens create` print and `--ca-fingerprint` takes.
Pure: no I/O.
"""

from __future__ import annotations

import re

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.DOTALL)
_HEX = re.compile(r"[0-9a-f]{64}")


def fingerprint(der: bytes) -> str:
    import hashlib  # OpenSSL's libcrypto: not in every agent process that imports transport

    return "sha256:" + hashlib.sha256(der).hexdigest()


def parse_fingerprint(text: str) -> str:
    """Normalise `sha256:AB:CD…`, `sha256:abcd…` or bare hex; ValueError if it is not one."""
    value = text.strip()
    algo, sep, rest = value.partition(":")
    if sep and algo.lower() == "sha256":
        value = rest
    elif sep and not _HEX.fullmatch(value.replace(":", "").lower()):
        raise ValueError(f"unsupported fingerprint {text!r}: expected sha256:<64 hex digits>")
    digest = value.replace(":", "").lower()
    if not _HEX.fullmatch(digest):
        raise ValueError(f"bad fingerprint {text!r}: expected sha256:<64 hex digits>")
    return "sha256:" + digest


def pem_certificates(pem: bytes) -> list[bytes]:
    """The DER of every certificate in a PEM bundle, in order."""
    import ssl  # only when pins are checked (install, CLI): `agent run` keeps ssl out

    return [ssl.PEM_cert_to_DER_cert(block.decode("ascii")) for block in _PEM.findall(pem)]


def der_to_pem(der: bytes) -> bytes:
    import ssl

    return ssl.DER_cert_to_PEM_cert(der).encode("ascii")


def bundle_fingerprint(pem: bytes) -> str:
    """The fingerprint of the first certificate of a CA file; ValueError if it holds none."""
    certs = pem_certificates(pem)
    if not certs:
        raise ValueError("no PEM certificate found")
    return fingerprint(certs[0])
