"""Pydantic models of the REST bodies, so the OpenAPI document has a schema for each of them.

Two kinds, with opposite rules:

- `Body` (requests): strict types and unknown keys refused, so a typo is a 400 naming the field
  rather than a setting silently ignored. New routes parse their body with it (`rest_io.body`);
  the seed's routes keep the validation of their service functions (the exact messages the seeds'
  tests pin) and use their models for the document only.
- `Shown` (responses): a description of what the service functions return, field for field and
  in their casing (camelCase where the seeds use it, snake_case where the gRPC messages do).
  Every field is declared without a default, and keys a model does not name pass through
  (`extra="allow"`), so `response_model` can neither drop a field nor add one. A model that
  names optional keys is served with `response_model_exclude_unset=True` (the key appears only
  when the service returned it).

This module holds the shared and tenancy models; `rest_models_work.py` those of payloads and
deployments.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Number = int | float  # a JSON number: integers stay integers (a bare `float` would print 5 as 5.0)
MAX_LIFETIME_S = 3650 * 86400  # the services' bound on a token's lifetime (ten years)


class Body(BaseModel):
    """A request body: strict JSON types, no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Shown(BaseModel):
    """A response body as the service returns it; keys not named here pass through untouched."""

    model_config = ConfigDict(extra="allow")


# --- operations (outside /v2) ---------------------------------------------------------------------

class Health(Shown):
    status: str
    replica: str


class Readiness(Health):
    store: str
    migrations: str


# --- clients, tokens ---------------------------------------------------------------------------

class Client(Shown):
    id: str
    name: str
    created_at: str


class ClientList(Shown):
    data: list[Client]
    total: int


class Me(Shown):
    tokenId: str
    role: str
    partner: bool
    clients: list[Client]


class CreateClientBody(Body):
    name: str = Field(min_length=1, max_length=200, description="The organization's name")


class ClientPolicy(Shown):
    clientId: str
    requireApprovalOver: int | None
    requireApprovalForAll: bool
    updatedAt: str | None
    updatedBy: str | None


class ClientPolicyBody(Body):
    """A field left out means no such rule: `{}` clears the policy."""

    requireApprovalOver: int | None = Field(None, ge=0, description="Approval needed above this many targets")
    requireApprovalForAll: bool | None = Field(None, description="Approval needed for every deployment")


class CreatedSecret(Shown):
    """A new token: its secret is shown once, only its hash is stored."""

    id: str
    token: str


class ReplacementToken(CreatedSecret):
    device_id: str


class ApiToken(Shown):
    id: str
    name: str
    role: str
    partner: bool
    client_ids: list[str]
    created_at: str
    expires_at: str
    revoked: bool
    created_by: str


class ApiTokenList(Shown):
    data: list[ApiToken]
    total: int


class CreateApiTokenBody(Body):
    clientIds: list[str] = Field(min_length=1, description="The clients the token serves")
    role: Literal["admin", "operator", "viewer"] = "viewer"
    name: str = Field("", max_length=200)
    expiresInSeconds: float = Field(0, ge=0, le=MAX_LIFETIME_S, description="Lifetime in seconds; 0 = never expires")


class EnrollmentToken(Shown):
    id: str
    client_id: str
    name: str
    expires_at: str
    max_uses: int
    uses: int
    revoked: bool
    group_ids: list[str]
    created_at: str
    created_by: str
    device_id: str


class EnrollmentTokenList(Shown):
    data: list[EnrollmentToken]
    total: int


class CreateEnrollmentTokenBody(Body):
    # Defaults as `convoy tokens create`'s: a token pasted in the wrong place is bounded unless asked.
    expiresInSeconds: float = Field(86400, ge=0, le=MAX_LIFETIME_S,
                                    description="Lifetime in seconds (default 24 h); 0 = never expires")
    maxUses: int = Field(100, ge=0, le=1_000_000_000,
                         description="How many devices may enroll with it (default 100); 0 = no limit")
    groupIds: list[str] = Field(default_factory=list, description="Groups each enrolled device joins")
    name: str = Field("", max_length=200)


# --- signers -----------------------------------------------------------------------------------

class Signer(Shown):
    keyId: str
    clientId: str
    name: str
    publicKey: str
    createdAt: str | None
    createdBy: str | None
    revokedAt: str | None


class SignerList(Shown):
    data: list[Signer]
    total: int


class RegisterSignerBody(Body):
    publicKey: str = Field(description="ed25519:<base64 of the 32-byte public key>")
    name: str | None = None


class TrustSet(Shown):
    clientId: str
    document: str
    keyId: str
    signature: str
    serial: int
    publishedAt: str | None


class TrustSetBody(Body):
    document: str
    keyId: str
    signature: str


# --- devices and their enrollment history (seed 000) ------------------------------------------

class EnrollmentRef(Shown):
    """The seed's DeviceDeploymentRef."""

    id: str
    status: str
    enrollment_date: str | None


class DeviceFacts(Shown):
    hostname: str
    os: str
    os_version: str
    arch: str
    cpu_count: int
    memory_bytes: int
    disks: list[dict[str, Any]]
    ip_addresses: list[str]


class Device(Shown):
    id: str
    client_id: str
    machine_id: str
    facts: DeviceFacts
    tags: list[str]
    site: str
    online: bool
    last_seen_at: str | None
    agent_version: str
    maintenance_windows: list[Any]
    group_ids: list[str]
    created_at: str | None
    updated_at: str | None
    latest_enrollment: EnrollmentRef | None


class DeviceList(Shown):
    data: list[Device]
    total: int


class UpdateDeviceBody(Body):
    """Each field left out (or null) stays as it is."""

    tags: list[str] | None = Field(None, description="Replaces the device's tags ([] clears them)")
    site: str | None = Field(None, description="The device's site ('' clears it)")


class DeviceDeploymentList(Shown):
    """Seed 000's List Deployments response."""

    data: list[EnrollmentRef]
    total_count: int
    next_cursor: str | None


class DeviceDeployment(Shown):
    """Seed 000's full DeviceDeployment record."""

    id: str
    status: str
    enrollment_date: str | None
    enrollment_token_id: str | None
    user_id: str | None
    error_logs: list[str] | None
    created_at: str | None
    updated_at: str | None
