"""The schema. Every row that belongs to a tenant carries `client_id`; every secret is a hash.

Naming: `device_deployments` is seed 000's table of enrollment events; the per-device records
of a rollout (seed 004) are `deployment_devices`, and each attempt on a device is a `jobs` row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no time zones), always returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


ID = String(36)


class Client(Base):
    __tablename__ = "clients"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))  # admin | operator | viewer
    partner: Mapped[bool] = mapped_column(Boolean, default=False)  # every client, present and future
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[str | None] = mapped_column(ID, default=None)  # the API token that made it


class ApiTokenClient(Base):
    __tablename__ = "api_token_clients"
    token_id: Mapped[str] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True)


class EnrollmentToken(Base):
    __tablename__ = "enrollment_tokens"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[datetime | None]
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    group_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_by: Mapped[str | None] = mapped_column(ID)  # the API token that minted it: the seed's user_id
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # A replacement token (`convoy devices replace`) re-enrolls exactly this device, once.
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), default=None)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("client_id", "machine_id", name="uq_devices_client_machine"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    machine_id: Mapped[str] = mapped_column(String(200))
    credential_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hostname: Mapped[str] = mapped_column(String(255), default="")
    os: Mapped[str] = mapped_column(String(32), default="")
    os_version: Mapped[str] = mapped_column(String(100), default="")
    arch: Mapped[str] = mapped_column(String(32), default="")
    cpu_count: Mapped[int] = mapped_column(Integer, default=0)
    memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    disks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ip_addresses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    site: Mapped[str] = mapped_column(String(200), default="")
    agent_version: Mapped[str] = mapped_column(String(50), default="")
    maintenance_windows: Mapped[list[Any]] = mapped_column(JSON, default=list)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None]
    connection_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The stream that holds this device's presence (set by its hello, on whichever replica);
    an offline or heartbeat write from any other stream leaves the row alone (api/hub.py)."""
    connected_at: Mapped[datetime | None] = mapped_column(nullable=True)
    """When that stream was accepted: a hello older than the row's is not written over it."""
    replica_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    """The replica holding that stream (set with connection_id, cleared with it): the heartbeat
    is one UPDATE by replica id (api/hub.py `_touch`)."""
    public_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The device key (SubjectPublicKeyInfo PEM) it enrolled with; None: bearer-only (docs/security.md)."""
    cert_sha256: Mapped[str | None] = mapped_column(String(71), nullable=True)
    """`sha256:<hex>` of the device certificate last issued: the one agent calls must present."""
    cert_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    """Set by `convoy devices revoke`: the credential is refused from then on (docs/security.md)."""
    revoked_by: Mapped[str | None] = mapped_column(ID, default=None)  # the API token that revoked it


class DeviceEnrollment(Base):
    """Seed 000's device_deployments: one row per use of an enrollment token on a device."""

    __tablename__ = "device_deployments"
    __table_args__ = (
        Index("ix_device_deployments_device_date", "device_id", "enrollment_date", "id"),
        Index("ix_device_deployments_pending_timeout", "status", "timeout_at"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    enrollment_token_id: Mapped[str] = mapped_column(ID)
    user_id: Mapped[str | None] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16))  # pending | success | error
    enrollment_date: Mapped[datetime]
    error_logs: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    timeout_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("client_id", "name", name="uq_groups_client_name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class GroupMember(Base):
    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True, index=True)


class Script(Base):
    __tablename__ = "scripts"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    interpreter: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    parameters_schema: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rollback_body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class Blob(Base):
    """Content-addressed bytes, shared by every coordinator on the same store."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class BlobChunk(Base):
    __tablename__ = "blob_chunks"
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Artifact(Base):
    __tablename__ = "artifacts"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # deb | tar.gz | file
    created_at: Mapped[datetime]


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_client_status", "client_id", "status"),
        Index("ix_deployments_status_next_batch", "status", "next_batch_at"),
        Index("ix_deployments_due_at", "due_at"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300))
    type: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The payload resolved for agents at initialize (script body, artifact hash, ...), frozen so
    # an edited script cannot change a rollout under way.
    job_payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    target_type: Mapped[str] = mapped_column(String(16))
    target_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    rollout_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=0)  # bumped on every guarded update
    total: Mapped[int] = mapped_column(Integer, default=0)
    total_batches: Mapped[int] = mapped_column(Integer, default=0)
    current_batch: Mapped[int] = mapped_column(Integer, default=0)
    # Progress counters, maintained in the same transaction as each record transition.
    n_pending: Mapped[int] = mapped_column(Integer, default=0)
    n_running: Mapped[int] = mapped_column(Integer, default=0)
    n_completed: Mapped[int] = mapped_column(Integer, default=0)
    n_failed: Mapped[int] = mapped_column(Integer, default=0)
    n_skipped: Mapped[int] = mapped_column(Integer, default=0)
    n_installing: Mapped[int] = mapped_column(Integer, default=0)
    """Of n_running, those installing (the rest are downloading): sets downloading/installing."""
    batch_sizes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    """Records per batch, frozen at initialize: which records are "up to the current batch"."""
    # Thresholds re-arm on resume: they count failures (and finished records) since then.
    failure_baseline: Mapped[int] = mapped_column(Integer, default=0)
    finished_baseline: Mapped[int] = mapped_column(Integer, default=0)
    batch_finished_at: Mapped[datetime | None]
    next_batch_at: Mapped[datetime | None]
    """When the next batch is due; before batch 1, the `startAt` of a scheduled start."""
    due_at: Mapped[datetime | None]
    """When an engine (any replica's) must reconcile this deployment next; NULL: nothing is due.
    Written by every reconcile, set to now by every change that needs one (`mark_due`)."""
    gate_passed_batch: Mapped[int] = mapped_column(Integer, default=0)
    """The batch whose successGatePercent an operator passed by resuming after it was done."""
    rollback_job_payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """For onFailureThreshold "rollback": the revert payload, frozen at initialize."""
    created_by: Mapped[str | None] = mapped_column(ID)
    rollback_of: Mapped[str | None] = mapped_column(ID)
    rolled_back_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    initialized_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)
    """An operator's `{"keyId", "value", "manifest"}` given on start (docs/security.md, "Signed
    work"); sent with every job. None: unsigned."""


class DeploymentDevice(Base):
    __tablename__ = "deployment_devices"
    __table_args__ = (
        UniqueConstraint("deployment_id", "device_id", name="uq_deployment_devices_dep_dev"),
        Index("ix_deployment_devices_dep_batch_status", "deployment_id", "batch_number", "status"),
        Index("ix_deployment_devices_dep_status", "deployment_id", "status"),
        Index("ix_deployment_devices_due", "status", "due_at"),
        Index("ix_deployment_devices_job", "job_id"),
        Index("ix_deployment_devices_dep_due", "deployment_id", "due_at"),
        Index("ix_deployment_devices_device_wait", "device_id", "wait_until"),
        Index("ix_deployment_devices_dep_wait", "deployment_id", "wait_until"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    batch_number: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)  # order within the frozen plan
    status: Mapped[str] = mapped_column(String(16))
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Jobs created for this record (one per dispatch)."""
    runs: Mapped[int] = mapped_column(Integer, default=0)
    """Attempts that ran (not skipped by the agent, not withdrawn before delivery)."""
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    """A manual retry waiting for dispatch: it goes out even while the deployment is paused."""
    job_id: Mapped[str | None] = mapped_column(ID)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    output: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")
    skip_reason: Mapped[str] = mapped_column(String(64), default="")
    # When the engine must next look at this record: retry backoff end or silence check; NULL
    # for records nothing is due for (terminal ones, later batches).
    due_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    wait_until: Mapped[datetime | None] = mapped_column(default=None)
    """offlineDevices "wait": a pending record whose device was offline at dispatch waits for it
    to connect until then (NULL: not waiting). The hub makes it due when the device connects."""


class Job(Base):
    """One attempt on one device. The id is what the agent journals and deduplicates on."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_device_state", "device_id", "state"),
                      Index("ix_jobs_deployment_created", "deployment_id", "created_at"))
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    deployment_device_id: Mapped[str] = mapped_column(ForeignKey("deployment_devices.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[str] = mapped_column(ID)
    device_id: Mapped[str] = mapped_column(ID)
    attempt: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    """What the agent last reported (common/states.py JobState), or "queued" before any report."""
    desired: Mapped[str] = mapped_column(String(16), default="run")
    """What the agent should be doing: "run" or "withdrawn" (re-sent on every connect)."""
    withdraw_reason: Mapped[str] = mapped_column(Text, default="")
    activity_at: Mapped[datetime | None]
    """The last time the device said anything about this job (dispatch time before that)."""
    ran: Mapped[bool] = mapped_column(Boolean, default=False)
    """The attempt ran (the agent got past "received"), so it counts as an attempt."""
    exit_code: Mapped[int | None] = mapped_column(Integer)
    output: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    hold_until: Mapped[datetime | None] = mapped_column(default=None)
    """windowPolicy "wait": the agent holds the job until the device's window opens then; the
    silence deadline counts from no earlier than this (NULL: not held)."""


class DeploymentEvent(Base):
    """Audit trail: every deployment transition, who or what caused it, and why."""

    __tablename__ = "deployment_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))  # api token id, "engine", "agent:<device>"
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")




class AuditEntry(Base):
    """The global audit log: one row per admin write, in the write's own transaction (a refused
    write gets its own row, outcome the error code). `client_id` NULL: no single client (a
    partner's action, or a refusal before the client was known): partner tokens only see it."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_client_id", "client_id", "id"), Index("ix_audit_log_at", "at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))  # an API token id, or engine@<replica>
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(64))  # e.g. device.revoke, deployment.start
    client_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    target_id: Mapped[str] = mapped_column(String(200), default="")
    replica: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(32), default="ok")  # ok, or the refusal's error code
    summary: Mapped[str] = mapped_column(Text, default="")


class ClientPolicy(Base):
    """A client's approval policy (docs/approvals.md); no row = no policy."""

    __tablename__ = "client_policies"
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True)
    require_approval_over: Mapped[int | None] = mapped_column(Integer, nullable=True)
    require_approval_for_all: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(ID)  # the API token that set it


class DeploymentApproval(Base):
    """One operator's sign-off on a deployment, given before `start` (the audit trail has it too)."""

    __tablename__ = "deployment_approvals"
    __table_args__ = (UniqueConstraint("deployment_id", "token_id", name="uq_deployment_approvals_dep_token"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    token_id: Mapped[str] = mapped_column(ID)  # the approving API token
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class Signer(Base):
    """A client's registered signing key (the public half only; docs/security.md, "Signed work")."""

    __tablename__ = "signers"
    __table_args__ = (UniqueConstraint("client_id", "key_id", name="uq_signers_client_key"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(ID)
    revoked_at: Mapped[datetime | None]


class TrustSetDocument(Base):
    """The newest signed trust-set document of a client, forwarded to its agents on connect."""

    __tablename__ = "trust_sets"
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))
    serial: Mapped[int] = mapped_column(BigInteger)
    published_at: Mapped[datetime]
    published_by: Mapped[str | None] = mapped_column(ID)


class Webhook(Base):
    """A client's receiver of deployment events (docs/webhooks.md). The secret is stored
    encrypted (Fernet, `<data-dir>/webhooks.key`): the coordinator needs it back to sign."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Event types it receives (coordinator/domain/webhooks.py); empty: every event."""
    secret_encrypted: Mapped[str] = mapped_column(Text)
    secret_key_id: Mapped[str] = mapped_column(String(16))
    """Which webhooks.key encrypted the secret: only a replica holding that key delivers for it."""
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(ID)


class WebhookDelivery(Base):
    """The outbox: one row per event per webhook, written in the transaction of the deployment's
    move, so an event is sent at least once if and only if that move committed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_hook_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_hook_created", "webhook_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(ID)
    event_id: Mapped[str] = mapped_column(ID)
    event_type: Mapped[str] = mapped_column(String(40))
    deployment_id: Mapped[str] = mapped_column(ID)
    body: Mapped[str] = mapped_column(Text)
    """The JSON body exactly as sent (and signed) on every attempt."""
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    """When any replica may try it next (a claim moves it a lease ahead); NULL once final."""
    lease_until: Mapped[datetime | None]
    """Set while a replica is trying it: the claim's expiry (= next_attempt_at then)."""
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
