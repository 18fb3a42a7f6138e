"""Pydantic models of the REST bodies of the work: groups, scripts, artifacts and deployments.

The rules of `Body` and `Shown` are in `rest_models.py`. The deployment bodies (seed 004) are
validated by `coordinator.domain.spec`; their models here document them and parse nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from coordinator.api.rest_models import Body, Number, Shown

# --- groups, scripts, artifacts -----------------------------------------------------------------


class Group(Shown):
    id: str
    client_id: str
    name: str
    device_ids: list[str]
    created_at: str


class GroupList(Shown):
    data: list[Group]
    total: int


class CreateGroupBody(Body):
    name: str = Field(min_length=1, max_length=200, description="Unique within the client")
    clientId: str | None = Field(None, description="Required when the token serves several clients")


class GroupMembersBody(Body):
    deviceIds: list[str] = Field(min_length=1, description="Devices of the group's client")


class Script(Shown):
    id: str
    client_id: str
    name: str
    interpreter: str
    body: str
    parameters_schema: str
    rollback_body: str
    created_at: str


class ScriptList(Shown):
    data: list[Script]
    total: int


class CreateScriptBody(Body):
    name: str = Field(min_length=1, max_length=200)
    interpreter: Literal["sh", "bash", "python", "powershell"] = Field(description="What runs it on the device")
    body: str = Field(min_length=1, description="The script")
    parametersSchema: dict[str, Any] | None = Field(
        None, description='JSON Schema (subset) of its parameters, e.g. {"type": "object", "properties": '
                          '{"message": {"type": "string"}}, "required": ["message"]}')
    rollbackBody: str = Field("", description="The script that reverts it (used by rollback)")
    clientId: str | None = Field(None, description="Required when the token serves several clients")


class Artifact(Shown):
    id: str
    client_id: str
    name: str
    sha256: str
    size: int
    kind: str
    created_at: str


class ArtifactList(Shown):
    data: list[Artifact]
    total: int


# --- deployments (seed 004) -----------------------------------------------------------------------

class _Open(Body):
    """Documented keys, typed; other keys (the rollout strategies of docs/deployments-rules.md)
    are checked by the spec validator."""

    model_config = ConfigDict(extra="allow", strict=True)


class Staggered(_Open):
    batchSize: int | str | None = Field(None, description='An integer ≥ 1 or "N%" of the resolved devices')
    batchDelayMinutes: Number | None = None
    pauseOnFailureCount: int | None = None
    pauseOnFailurePercent: Number | None = None


class RetryConfig(_Open):
    maxRetries: int | None = Field(None, ge=0, le=10)
    backoffMinutes: list[Number] | None = None


class RolloutConfig(_Open):
    type: Literal["immediate", "staggered"] | None = None
    staggered: Staggered | None = None
    respectMaintenanceWindows: bool | None = None
    retryConfig: RetryConfig | None = None


class DeploymentSpecBody(Body):
    """Seed 004's create body (`clientId` when the token serves several clients)."""

    name: str
    type: Literal["script", "patch", "software", "policy"]
    payload: dict[str, Any] = Field(description='e.g. {"scriptId": "uuid", "parameters": {}}')
    targetType: Literal["devices", "groups", "filter", "all"]
    targetConfig: dict[str, Any] | None = Field(
        None, description='{"type", "deviceIds"} | {"type", "groupIds"} | {"type", "filter"}')
    rolloutConfig: RolloutConfig | None = None
    clientId: str | None = None


class DeploymentUpdateBody(Body):
    """PUT: the keys sent replace the draft's."""

    name: str | None = None
    type: Literal["script", "patch", "software", "policy"] | None = None
    payload: dict[str, Any] | None = None
    targetType: Literal["devices", "groups", "filter", "all"] | None = None
    targetConfig: dict[str, Any] | None = None
    rolloutConfig: RolloutConfig | None = None
    clientId: str | None = None


class Signature(Body):
    keyId: str
    value: str
    manifest: str | dict[str, Any]


class SignatureBody(Body):
    """Optional body of start and rollback: an operator's signature over `GET …/manifest`."""

    signature: Signature | None = None


class ApproveBody(Body):
    comment: str | None = Field(None, max_length=2000)


class Progress(Shown):
    total: int
    pending: int
    running: int
    completed: int
    failed: int
    skipped: int
    currentBatch: int
    totalBatches: int
    percentComplete: int


class ApprovalGiven(Shown):
    tokenId: str
    tokenName: str
    at: str | None
    comment: str | None


class Approval(Shown):
    status: str
    required: bool
    reason: str
    approvals: list[ApprovalGiven]


class DeploymentSummary(Shown):
    """A deployment as lists show it."""

    id: str
    clientId: str
    name: str
    type: str
    payload: dict[str, Any]
    targetType: str
    targetConfig: dict[str, Any]
    rolloutConfig: dict[str, Any]
    status: str
    statusReason: str | None
    progress: Progress
    createdAt: str | None
    updatedAt: str | None
    startedAt: str | None
    completedAt: str | None
    nextBatchAt: str | None
    rollbackOf: str | None
    rolledBackBy: str | None
    strategies: list[str]
    signedBy: str | None


class Deployment(DeploymentSummary):
    """A deployment with real-time progress and its approval (docs/approvals.md)."""

    approval: Approval


class DeploymentList(Shown):
    data: list[DeploymentSummary]
    total: int
    limit: int
    offset: int


class DeletedDeployment(Shown):
    id: str
    deleted: bool


class BatchPreview(Shown):
    batchNumber: int
    deviceCount: int


class InitializePreview(Shown):
    """The plan; the optional keys appear only when the deployment uses what they describe."""

    resolvedCount: int
    totalBatches: int
    batches: list[BatchPreview]
    strategies: list[str] | None = None
    offlineNow: int | None = None
    startAt: str | None = None
    maxPerMinute: Number | None = None
    onFailureThreshold: str | None = None
    successGatePercent: Number | None = None
    failureBasis: str | None = None
    minFinishedForPercent: Number | None = None
    approval: Approval | None = None


class Initialized(Shown):
    deployment: Deployment
    preview: InitializePreview


class Manifest(Shown):
    manifest: str = Field(description="The canonical JSON an operator signs")
    payload: dict[str, Any]


class AuditEntry(Shown):
    at: str | None
    actor: str
    actorName: str
    fromStatus: str | None
    toStatus: str | None
    reason: str | None


class AuditList(Shown):
    data: list[AuditEntry]
    total: int
    limit: int
    offset: int


class DeploymentRecord(Shown):
    """A per-device deployment record (seed 004's per-device drill-down)."""

    id: str
    deploymentId: str
    deviceId: str
    hostname: str
    batchNumber: int
    status: str
    retryCount: int
    attempts: int
    jobId: str | None
    exitCode: int | None
    output: str | None
    error: str | None
    skipReason: str | None
    nextAttemptAt: str | None
    waitingUntil: str | None
    startedAt: str | None
    finishedAt: str | None
    updatedAt: str | None


class DeploymentRecordList(Shown):
    data: list[DeploymentRecord]
    total: int
    limit: int
    offset: int


class DeviceRecord(DeploymentRecord):
    deploymentName: str
    deploymentStatus: str


class DeviceRecordList(Shown):
    data: list[DeviceRecord]
    total: int
    limit: int
    offset: int
