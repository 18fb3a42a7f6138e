"""Who is calling: API tokens for operators, device credentials for agents.

Roles, least to most: viewer (read), operator (also create/start/pause/resume/cancel/retry
deployments, approve other operators' deployments (docs/approvals.md), and manage groups,
scripts, artifacts and devices), admin (also enrollment tokens, narrower API tokens and the
approval policy for its clients). A partner token (made by `convoy admin bootstrap`) is an
admin over every client, present and future, and the only kind that can create clients.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.errors import NotFound, PermissionDenied, Unauthenticated
from common.secrets import hash_secret
from common.timefmt import iso
from coordinator.store import models as m

ROLES = ("viewer", "operator", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    token_id: str
    role: str
    partner: bool
    client_ids: frozenset[str]  # ignored when partner
    name: str = ""
    """The API token's name (the audit log records it beside the id)."""

    def can_see(self, client_id: str) -> bool:
        return self.partner or client_id in self.client_ids

    def require_role(self, role: str, action: str = "do this") -> None:
        if _RANK[self.role] < _RANK[role]:
            raise PermissionDenied(f"a {self.role} token cannot {action}; {role} role required",
                                   required_role=role, role=self.role)

    def require_partner(self, action: str) -> None:
        if not self.partner:
            raise PermissionDenied(f"only a partner-level admin token can {action}")

    def require_client(self, session: Session, client_id: str) -> None:
        """403 for a client outside the token's scope; 404 for one that does not exist."""
        if not self.can_see(client_id):
            raise PermissionDenied("insufficient permissions for this client", client_id=client_id)
        if session.get(m.Client, client_id) is None:
            raise NotFound("Client not found", client_id=client_id)

    def visible_clients(self, session: Session) -> list[str]:
        if self.partner:
            return list(session.scalars(select(m.Client.id)))
        return sorted(self.client_ids)

    def default_client(self, session: Session, given: str | None) -> str:
        """The client a create call applies to: `given`, or the token's only client."""
        from common.errors import InvalidArgument
        from common.ids import parse_uuid

        if given:
            client_id = parse_uuid(given, "clientId")
            self.require_client(session, client_id)
            return client_id
        clients = self.visible_clients(session)
        if len(clients) == 1:
            return clients[0]
        raise InvalidArgument("clientId is required: this token spans several clients", parameter="clientId")


def bearer(header_value: str | None) -> str:
    if not header_value:
        raise Unauthenticated("authentication required: send 'Authorization: Bearer <token>'")
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authentication required: send 'Authorization: Bearer <token>'")
    return token.strip()


def authenticate_api(session: Session, token: str, now: datetime | None = None) -> Principal:
    """The token's principal; Unauthenticated for an unknown, revoked or expired token. Checked
    on every call, so a revocation takes effect with the next call."""
    row = session.scalar(select(m.ApiToken).where(m.ApiToken.token_hash == hash_secret(token)))
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("invalid or revoked API token")
    if row.expires_at is not None and row.expires_at <= (now or datetime.now(UTC)):
        raise Unauthenticated(f"API token expired at {iso(row.expires_at)}", token_id=row.id)
    clients: Iterable[str] = session.scalars(
        select(m.ApiTokenClient.client_id).where(m.ApiTokenClient.token_id == row.id))
    return Principal(token_id=row.id, role=row.role, partner=row.partner, client_ids=frozenset(clients),
                     name=row.name or "")


def authenticate_device(session: Session, credential: str) -> m.Device:
    device = session.scalar(select(m.Device).where(m.Device.credential_hash == hash_secret(credential)))
    if device is None:
        raise Unauthenticated("invalid device credential: re-enroll this device with `convoy agent install`")
    if device.revoked_at is not None:
        raise revoked(device.id, device.revoked_at)
    return device


def revoked(device_id: str, at: datetime) -> Unauthenticated:
    """The refusal of a revoked device's credential (every agent call says the same)."""
    return Unauthenticated(f"device {device_id} was revoked at {iso(at)}: its credential no longer works "
                           "(an operator's `convoy devices replace` can enroll it again)", device_id=device_id)
def check_device_certificate(device: m.Device, presented: str, allow_bearer_only: bool = True) -> None:
    """Mutual TLS for agent calls (docs/security.md, "Device certificates"): `check_certificate`
    for a device row."""
    check_certificate(device.id, device.cert_sha256, presented, allow_bearer_only)


def check_certificate(device_id: str, on_record: str | None, presented: str, allow_bearer_only: bool = True) -> None:
    """`presented` is the `sha256:` fingerprint of the client certificate the call's TLS
    connection verified against the CA ("" for none); `on_record` the device's current one
    (None: it has none). A device with a certificate on record must present exactly that one;
    its credential alone is refused. A device without one is bearer-only (compatibility mode),
    unless the coordinator requires certificates."""
    if on_record is None:
        if presented:
            raise Unauthenticated(f"the client certificate presented is not device {device_id}'s: this device "
                                  "has no certificate on record", device_id=device_id)
        if not allow_bearer_only:
            raise Unauthenticated(f"device {device_id} has no device certificate and this coordinator requires one "
                                  "(--require-device-certs): reinstall it with `convoy agent install`",
                                  device_id=device_id)
        return
    if not presented:
        raise Unauthenticated(f"device {device_id} has a device certificate: its calls must present it (mutual TLS "
                              "on the agent port, the gRPC port + 1); the device credential alone is refused",
                              device_id=device_id)
    if presented != on_record:
        raise Unauthenticated(f"the client certificate presented is not device {device_id}'s current certificate "
                              "(it belongs to another device, or was replaced by a reinstall)", device_id=device_id)


def authenticate_agent(session: Session, credential: str, presented: str, allow_bearer_only: bool = True) -> m.Device:
    """The device making an agent call: its credential, and its certificate when it has one."""
    device = authenticate_device(session, credential)
    check_device_certificate(device, presented, allow_bearer_only)
    return device
