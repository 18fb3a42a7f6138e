from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Client(_message.Message):
    __slots__ = ("id", "name", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    created_at: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[str] = ...) -> None: ...

class Disk(_message.Message):
    __slots__ = ("mountpoint", "fstype", "total_bytes", "free_bytes")
    MOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
    FSTYPE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    mountpoint: str
    fstype: str
    total_bytes: int
    free_bytes: int
    def __init__(self, mountpoint: _Optional[str] = ..., fstype: _Optional[str] = ..., total_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ...) -> None: ...

class DeviceFacts(_message.Message):
    __slots__ = ("hostname", "os", "os_version", "arch", "cpu_count", "memory_bytes", "disks", "ip_addresses")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    os: str
    os_version: str
    arch: str
    cpu_count: int
    memory_bytes: int
    disks: _containers.RepeatedCompositeFieldContainer[Disk]
    ip_addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hostname: _Optional[str] = ..., os: _Optional[str] = ..., os_version: _Optional[str] = ..., arch: _Optional[str] = ..., cpu_count: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., disks: _Optional[_Iterable[_Union[Disk, _Mapping]]] = ..., ip_addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class EnrollmentStatusRef(_message.Message):
    __slots__ = ("id", "status", "enrollment_date")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ENROLLMENT_DATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: str
    enrollment_date: str
    def __init__(self, id: _Optional[str] = ..., status: _Optional[str] = ..., enrollment_date: _Optional[str] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("id", "client_id", "machine_id", "facts", "tags", "site", "online", "last_seen_at", "agent_version", "maintenance_windows", "group_ids", "created_at", "updated_at", "latest_enrollment", "revoked_at", "identity", "certificate_expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MACHINE_ID_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LATEST_ENROLLMENT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    client_id: str
    machine_id: str
    facts: DeviceFacts
    tags: _containers.RepeatedScalarFieldContainer[str]
    site: str
    online: bool
    last_seen_at: str
    agent_version: str
    maintenance_windows: _containers.RepeatedScalarFieldContainer[str]
    group_ids: _containers.RepeatedScalarFieldContainer[str]
    created_at: str
    updated_at: str
    latest_enrollment: EnrollmentStatusRef
    revoked_at: str
    identity: str
    certificate_expires_at: str
    def __init__(self, id: _Optional[str] = ..., client_id: _Optional[str] = ..., machine_id: _Optional[str] = ..., facts: _Optional[_Union[DeviceFacts, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., site: _Optional[str] = ..., online: _Optional[bool] = ..., last_seen_at: _Optional[str] = ..., agent_version: _Optional[str] = ..., maintenance_windows: _Optional[_Iterable[str]] = ..., group_ids: _Optional[_Iterable[str]] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., latest_enrollment: _Optional[_Union[EnrollmentStatusRef, _Mapping]] = ..., revoked_at: _Optional[str] = ..., identity: _Optional[str] = ..., certificate_expires_at: _Optional[str] = ...) -> None: ...

class DeviceDeployment(_message.Message):
    __slots__ = ("id", "status", "enrollment_date", "enrollment_token_id", "user_id", "error_logs", "has_error_logs", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ENROLLMENT_DATE_FIELD_NUMBER: _ClassVar[int]
    ENROLLMENT_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_LOGS_FIELD_NUMBER: _ClassVar[int]
    HAS_ERROR_LOGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: str
    enrollment_date: str
    enrollment_token_id: str
    user_id: str
    error_logs: _containers.RepeatedScalarFieldContainer[str]
    has_error_logs: bool
    created_at: str
    updated_at: str
    def __init__(self, id: _Optional[str] = ..., status: _Optional[str] = ..., enrollment_date: _Optional[str] = ..., enrollment_token_id: _Optional[str] = ..., user_id: _Optional[str] = ..., error_logs: _Optional[_Iterable[str]] = ..., has_error_logs: _Optional[bool] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ...) -> None: ...

class TargetConfig(_message.Message):
    __slots__ = ("type", "device_ids", "group_ids", "filter")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    type: str
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    group_ids: _containers.RepeatedScalarFieldContainer[str]
    filter: str
    def __init__(self, type: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ..., group_ids: _Optional[_Iterable[str]] = ..., filter: _Optional[str] = ...) -> None: ...

class StaggeredConfig(_message.Message):
    __slots__ = ("batch_size", "batch_delay_minutes", "pause_on_failure_count", "pause_on_failure_percent", "batches", "ramp", "success_gate_percent", "failure_basis", "min_finished_for_percent")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BATCH_DELAY_MINUTES_FIELD_NUMBER: _ClassVar[int]
    PAUSE_ON_FAILURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PAUSE_ON_FAILURE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    RAMP_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_GATE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_BASIS_FIELD_NUMBER: _ClassVar[int]
    MIN_FINISHED_FOR_PERCENT_FIELD_NUMBER: _ClassVar[int]
    batch_size: _struct_pb2.Value
    batch_delay_minutes: float
    pause_on_failure_count: int
    pause_on_failure_percent: float
    batches: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Value]
    ramp: RampConfig
    success_gate_percent: float
    failure_basis: str
    min_finished_for_percent: int
    def __init__(self, batch_size: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., batch_delay_minutes: _Optional[float] = ..., pause_on_failure_count: _Optional[int] = ..., pause_on_failure_percent: _Optional[float] = ..., batches: _Optional[_Iterable[_Union[_struct_pb2.Value, _Mapping]]] = ..., ramp: _Optional[_Union[RampConfig, _Mapping]] = ..., success_gate_percent: _Optional[float] = ..., failure_basis: _Optional[str] = ..., min_finished_for_percent: _Optional[int] = ...) -> None: ...

class RampConfig(_message.Message):
    __slots__ = ("start", "factor", "max")
    START_FIELD_NUMBER: _ClassVar[int]
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    start: int
    factor: float
    max: _struct_pb2.Value
    def __init__(self, start: _Optional[int] = ..., factor: _Optional[float] = ..., max: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class RetryConfig(_message.Message):
    __slots__ = ("max_retries", "backoff_minutes")
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_MINUTES_FIELD_NUMBER: _ClassVar[int]
    max_retries: int
    backoff_minutes: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, max_retries: _Optional[int] = ..., backoff_minutes: _Optional[_Iterable[float]] = ...) -> None: ...

class VerifyConfig(_message.Message):
    __slots__ = ("script_id", "timeout_minutes")
    SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    script_id: str
    timeout_minutes: float
    def __init__(self, script_id: _Optional[str] = ..., timeout_minutes: _Optional[float] = ...) -> None: ...

class OfflineDevicesConfig(_message.Message):
    __slots__ = ("policy", "wait_minutes")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    WAIT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    policy: str
    wait_minutes: float
    def __init__(self, policy: _Optional[str] = ..., wait_minutes: _Optional[float] = ...) -> None: ...

class RolloutConfig(_message.Message):
    __slots__ = ("type", "staggered", "respect_maintenance_windows", "retry_config", "install_timeout_minutes", "verify", "offline_devices", "window_policy", "window_wait_max_hours", "max_per_minute", "on_failure_threshold", "start_at")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STAGGERED_FIELD_NUMBER: _ClassVar[int]
    RESPECT_MAINTENANCE_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    RETRY_CONFIG_FIELD_NUMBER: _ClassVar[int]
    INSTALL_TIMEOUT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    VERIFY_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_DEVICES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_POLICY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_WAIT_MAX_HOURS_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    ON_FAILURE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    START_AT_FIELD_NUMBER: _ClassVar[int]
    type: str
    staggered: StaggeredConfig
    respect_maintenance_windows: bool
    retry_config: RetryConfig
    install_timeout_minutes: float
    verify: VerifyConfig
    offline_devices: OfflineDevicesConfig
    window_policy: str
    window_wait_max_hours: float
    max_per_minute: int
    on_failure_threshold: str
    start_at: str
    def __init__(self, type: _Optional[str] = ..., staggered: _Optional[_Union[StaggeredConfig, _Mapping]] = ..., respect_maintenance_windows: _Optional[bool] = ..., retry_config: _Optional[_Union[RetryConfig, _Mapping]] = ..., install_timeout_minutes: _Optional[float] = ..., verify: _Optional[_Union[VerifyConfig, _Mapping]] = ..., offline_devices: _Optional[_Union[OfflineDevicesConfig, _Mapping]] = ..., window_policy: _Optional[str] = ..., window_wait_max_hours: _Optional[float] = ..., max_per_minute: _Optional[int] = ..., on_failure_threshold: _Optional[str] = ..., start_at: _Optional[str] = ...) -> None: ...

class DeploymentSpec(_message.Message):
    __slots__ = ("name", "type", "payload", "target_type", "target_config", "rollout_config", "client_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TARGET_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_CONFIG_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_CONFIG_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    payload: _struct_pb2.Struct
    target_type: str
    target_config: TargetConfig
    rollout_config: RolloutConfig
    client_id: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., target_type: _Optional[str] = ..., target_config: _Optional[_Union[TargetConfig, _Mapping]] = ..., rollout_config: _Optional[_Union[RolloutConfig, _Mapping]] = ..., client_id: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("total", "pending", "running", "completed", "failed", "skipped", "current_batch", "total_batches", "percent_complete")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    CURRENT_BATCH_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BATCHES_FIELD_NUMBER: _ClassVar[int]
    PERCENT_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    total: int
    pending: int
    running: int
    completed: int
    failed: int
    skipped: int
    current_batch: int
    total_batches: int
    percent_complete: int
    def __init__(self, total: _Optional[int] = ..., pending: _Optional[int] = ..., running: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., skipped: _Optional[int] = ..., current_batch: _Optional[int] = ..., total_batches: _Optional[int] = ..., percent_complete: _Optional[int] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("id", "client_id", "name", "type", "payload", "target_type", "target_config", "rollout_config", "status", "status_reason", "progress", "created_at", "updated_at", "started_at", "completed_at", "rollback_of", "rolled_back_by", "next_batch_at", "approval", "signed_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TARGET_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_CONFIG_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_OF_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_BY_FIELD_NUMBER: _ClassVar[int]
    NEXT_BATCH_AT_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    SIGNED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    client_id: str
    name: str
    type: str
    payload: _struct_pb2.Struct
    target_type: str
    target_config: TargetConfig
    rollout_config: RolloutConfig
    status: str
    status_reason: str
    progress: Progress
    created_at: str
    updated_at: str
    started_at: str
    completed_at: str
    rollback_of: str
    rolled_back_by: str
    next_batch_at: str
    approval: DeploymentApproval
    signed_by: str
    def __init__(self, id: _Optional[str] = ..., client_id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., target_type: _Optional[str] = ..., target_config: _Optional[_Union[TargetConfig, _Mapping]] = ..., rollout_config: _Optional[_Union[RolloutConfig, _Mapping]] = ..., status: _Optional[str] = ..., status_reason: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., started_at: _Optional[str] = ..., completed_at: _Optional[str] = ..., rollback_of: _Optional[str] = ..., rolled_back_by: _Optional[str] = ..., next_batch_at: _Optional[str] = ..., approval: _Optional[_Union[DeploymentApproval, _Mapping]] = ..., signed_by: _Optional[str] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("token_id", "token_name", "at", "comment")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_NAME_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    token_name: str
    at: str
    comment: str
    def __init__(self, token_id: _Optional[str] = ..., token_name: _Optional[str] = ..., at: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class DeploymentApproval(_message.Message):
    __slots__ = ("status", "required", "reason", "approvals")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    status: str
    required: bool
    reason: str
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    def __init__(self, status: _Optional[str] = ..., required: _Optional[bool] = ..., reason: _Optional[str] = ..., approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ...) -> None: ...

class DeploymentDevice(_message.Message):
    __slots__ = ("id", "deployment_id", "device_id", "hostname", "batch_number", "status", "retry_count", "attempts", "job_id", "exit_code", "output", "error", "skip_reason", "next_attempt_at", "started_at", "finished_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    BATCH_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASON_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    deployment_id: str
    device_id: str
    hostname: str
    batch_number: int
    status: str
    retry_count: int
    attempts: int
    job_id: str
    exit_code: int
    output: str
    error: str
    skip_reason: str
    next_attempt_at: str
    started_at: str
    finished_at: str
    updated_at: str
    def __init__(self, id: _Optional[str] = ..., deployment_id: _Optional[str] = ..., device_id: _Optional[str] = ..., hostname: _Optional[str] = ..., batch_number: _Optional[int] = ..., status: _Optional[str] = ..., retry_count: _Optional[int] = ..., attempts: _Optional[int] = ..., job_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., output: _Optional[str] = ..., error: _Optional[str] = ..., skip_reason: _Optional[str] = ..., next_attempt_at: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., updated_at: _Optional[str] = ...) -> None: ...

class BatchPreview(_message.Message):
    __slots__ = ("batch_number", "device_count")
    BATCH_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    batch_number: int
    device_count: int
    def __init__(self, batch_number: _Optional[int] = ..., device_count: _Optional[int] = ...) -> None: ...

class InitializePreview(_message.Message):
    __slots__ = ("resolved_count", "total_batches", "batches", "start_at", "max_per_minute", "on_failure_threshold", "success_gate_percent", "failure_basis", "min_finished_for_percent", "approval")
    RESOLVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BATCHES_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    START_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    ON_FAILURE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_GATE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_BASIS_FIELD_NUMBER: _ClassVar[int]
    MIN_FINISHED_FOR_PERCENT_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    resolved_count: int
    total_batches: int
    batches: _containers.RepeatedCompositeFieldContainer[BatchPreview]
    start_at: str
    max_per_minute: int
    on_failure_threshold: str
    success_gate_percent: float
    failure_basis: str
    min_finished_for_percent: int
    approval: DeploymentApproval
    def __init__(self, resolved_count: _Optional[int] = ..., total_batches: _Optional[int] = ..., batches: _Optional[_Iterable[_Union[BatchPreview, _Mapping]]] = ..., start_at: _Optional[str] = ..., max_per_minute: _Optional[int] = ..., on_failure_threshold: _Optional[str] = ..., success_gate_percent: _Optional[float] = ..., failure_basis: _Optional[str] = ..., min_finished_for_percent: _Optional[int] = ..., approval: _Optional[_Union[DeploymentApproval, _Mapping]] = ...) -> None: ...
