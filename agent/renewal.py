"""Renewing the device certificate before it expires (docs/security.md, "Rotating").

`agent run` checks at start and every few hours: once two thirds of the certificate's validity
have passed (about four months before the end of a one-year certificate), it asks the coordinator
for a new one (`RenewCertificate`, over mutual TLS with the current certificate, for the same
key), writes it, and reconnects presenting it. `cryptography` is loaded only for the renewal
itself (the request), never by an idle daemon that has nothing to renew.
"""

from __future__ import annotations

from datetime import datetime

from agent.state import AgentIdentity, StateDir
from common import transport
from common.convoy.v1 import agent_pb2

RENEW_AFTER = 2 / 3
"""Renew once this fraction of the certificate's validity has passed."""
CHECK_EVERY_S = 6 * 3600.0
RETRY_AFTER_S = 3600.0


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def due(identity: AgentIdentity, now: datetime) -> bool:
    """True when this device has a certificate and it is time to renew it."""
    if not identity.cert_not_after or not identity.cert_not_before:
        return False
    start, end = _time(identity.cert_not_before), _time(identity.cert_not_after)
    return now >= start + (end - start) * RENEW_AFTER


async def renew(state: StateDir, identity: AgentIdentity, stub: object,
                metadata: tuple[tuple[str, str], ...]) -> transport.ClientTLS:
    """Get, store and return the trust with a new certificate for the device's key."""
    from agent.device_key import DeviceKey

    key = DeviceKey(state.device_key_path.read_bytes())
    request = agent_pb2.RenewCertificateRequest(csr=key.csr(identity.machine_id))
    resp = await stub.RenewCertificate(request, metadata=metadata, timeout=30)  # type: ignore[attr-defined]
    cert = resp.device_certificate.encode()
    identity.cert_not_before, identity.cert_not_after = DeviceKey.validity(cert)
    state.save_certificate(identity, cert)
    return state.client_tls(identity)
