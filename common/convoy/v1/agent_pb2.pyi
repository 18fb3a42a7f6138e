from google.protobuf import struct_pb2 as _struct_pb2
from common.convoy.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RenewCertificateRequest(_message.Message):
    __slots__ = ("csr",)
    CSR_FIELD_NUMBER: _ClassVar[int]
    csr: bytes
    def __init__(self, csr: _Optional[bytes] = ...) -> None: ...

class RenewCertificateResponse(_message.Message):
    __slots__ = ("device_certificate", "expires_at")
    DEVICE_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    device_certificate: str
    expires_at: str
    def __init__(self, device_certificate: _Optional[str] = ..., expires_at: _Optional[str] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("token", "machine_id", "facts", "agent_version", "tags", "site", "csr", "key_proof", "proof_time", "report_success")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    MACHINE_ID_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    KEY_PROOF_FIELD_NUMBER: _ClassVar[int]
    PROOF_TIME_FIELD_NUMBER: _ClassVar[int]
    REPORT_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    token: str
    machine_id: str
    facts: _types_pb2.DeviceFacts
    agent_version: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    site: str
    csr: bytes
    key_proof: str
    proof_time: int
    report_success: bool
    def __init__(self, token: _Optional[str] = ..., machine_id: _Optional[str] = ..., facts: _Optional[_Union[_types_pb2.DeviceFacts, _Mapping]] = ..., agent_version: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., site: _Optional[str] = ..., csr: _Optional[bytes] = ..., key_proof: _Optional[str] = ..., proof_time: _Optional[int] = ..., report_success: _Optional[bool] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("device_id", "client_id", "credential", "enrollment_id", "heartbeat_interval_seconds", "device_certificate", "reported")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    ENROLLMENT_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    REPORTED_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    client_id: str
    credential: str
    enrollment_id: str
    heartbeat_interval_seconds: float
    device_certificate: str
    reported: bool
    def __init__(self, device_id: _Optional[str] = ..., client_id: _Optional[str] = ..., credential: _Optional[str] = ..., enrollment_id: _Optional[str] = ..., heartbeat_interval_seconds: _Optional[float] = ..., device_certificate: _Optional[str] = ..., reported: _Optional[bool] = ...) -> None: ...

class ReportEnrollmentRequest(_message.Message):
    __slots__ = ("enrollment_id", "success", "log_lines")
    ENROLLMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    LOG_LINES_FIELD_NUMBER: _ClassVar[int]
    enrollment_id: str
    success: bool
    log_lines: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, enrollment_id: _Optional[str] = ..., success: _Optional[bool] = ..., log_lines: _Optional[_Iterable[str]] = ...) -> None: ...

class ReportEnrollmentResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: str
    def __init__(self, status: _Optional[str] = ...) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "job_status")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    JOB_STATUS_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    job_status: JobStatus
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., job_status: _Optional[_Union[JobStatus, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("agent_version", "facts", "maintenance_windows", "journal")
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    facts: _types_pb2.DeviceFacts
    maintenance_windows: _containers.RepeatedScalarFieldContainer[str]
    journal: _containers.RepeatedCompositeFieldContainer[JobStatus]
    def __init__(self, agent_version: _Optional[str] = ..., facts: _Optional[_Union[_types_pb2.DeviceFacts, _Mapping]] = ..., maintenance_windows: _Optional[_Iterable[str]] = ..., journal: _Optional[_Iterable[_Union[JobStatus, _Mapping]]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "deployment_id", "state", "exit_code", "output", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    deployment_id: str
    state: str
    exit_code: int
    output: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., deployment_id: _Optional[str] = ..., state: _Optional[str] = ..., exit_code: _Optional[int] = ..., output: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CoordinatorMessage(_message.Message):
    __slots__ = ("welcome", "job", "cancel", "ack", "config")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    job: Job
    cancel: CancelJob
    ack: Ack
    config: AgentConfig
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., cancel: _Optional[_Union[CancelJob, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., config: _Optional[_Union[AgentConfig, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("device_id", "heartbeat_interval_seconds", "trust_set")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRUST_SET_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    heartbeat_interval_seconds: float
    trust_set: TrustSetUpdate
    def __init__(self, device_id: _Optional[str] = ..., heartbeat_interval_seconds: _Optional[float] = ..., trust_set: _Optional[_Union[TrustSetUpdate, _Mapping]] = ...) -> None: ...

class TrustSetUpdate(_message.Message):
    __slots__ = ("document", "key_id", "signature")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    document: str
    key_id: str
    signature: str
    def __init__(self, document: _Optional[str] = ..., key_id: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "deployment_id", "attempt", "type", "payload", "respect_maintenance_windows", "timeout_seconds", "rollback", "window_wait_max_seconds", "manifest", "signature_key_id", "signature")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    RESPECT_MAINTENANCE_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    WINDOW_WAIT_MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    deployment_id: str
    attempt: int
    type: str
    payload: _struct_pb2.Struct
    respect_maintenance_windows: bool
    timeout_seconds: float
    rollback: bool
    window_wait_max_seconds: float
    manifest: str
    signature_key_id: str
    signature: str
    def __init__(self, job_id: _Optional[str] = ..., deployment_id: _Optional[str] = ..., attempt: _Optional[int] = ..., type: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., respect_maintenance_windows: _Optional[bool] = ..., timeout_seconds: _Optional[float] = ..., rollback: _Optional[bool] = ..., window_wait_max_seconds: _Optional[float] = ..., manifest: _Optional[str] = ..., signature_key_id: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class CancelJob(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("job_id", "state")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class AgentConfig(_message.Message):
    __slots__ = ("heartbeat_interval_seconds",)
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_seconds: float
    def __init__(self, heartbeat_interval_seconds: _Optional[float] = ...) -> None: ...

class DownloadArtifactRequest(_message.Message):
    __slots__ = ("sha256", "offset")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    offset: int
    def __init__(self, sha256: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class ArtifactChunk(_message.Message):
    __slots__ = ("data", "offset", "total_size")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    total_size: int
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ...) -> None: ...
