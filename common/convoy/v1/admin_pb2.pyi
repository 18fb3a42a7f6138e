from common.convoy.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateWebhookRequest(_message.Message):
    __slots__ = ("client_id", "url", "events")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    url: str
    events: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_id: _Optional[str] = ..., url: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ...) -> None: ...

class ListWebhooksRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class WebhookRef(_message.Message):
    __slots__ = ("client_id", "id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    id: str
    def __init__(self, client_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class Webhook(_message.Message):
    __slots__ = ("id", "client_id", "url", "events", "created_at", "created_by", "secret")
    ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    id: str
    client_id: str
    url: str
    events: _containers.RepeatedScalarFieldContainer[str]
    created_at: str
    created_by: str
    secret: str
    def __init__(self, id: _Optional[str] = ..., client_id: _Optional[str] = ..., url: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., created_at: _Optional[str] = ..., created_by: _Optional[str] = ..., secret: _Optional[str] = ...) -> None: ...

class ListWebhooksResponse(_message.Message):
    __slots__ = ("data", "total")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[Webhook]
    total: int
    def __init__(self, data: _Optional[_Iterable[_Union[Webhook, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("client_id", "webhook_id", "status", "limit")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    webhook_id: str
    status: str
    limit: int
    def __init__(self, client_id: _Optional[str] = ..., webhook_id: _Optional[str] = ..., status: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("id", "webhook_id", "event_id", "event_type", "deployment_id", "status", "attempts", "next_attempt_at", "last_status_code", "last_error", "created_at", "delivered_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    deployment_id: str
    status: str
    attempts: int
    next_attempt_at: str
    last_status_code: int
    last_error: str
    created_at: str
    delivered_at: str
    def __init__(self, id: _Optional[str] = ..., webhook_id: _Optional[str] = ..., event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., deployment_id: _Optional[str] = ..., status: _Optional[str] = ..., attempts: _Optional[int] = ..., next_attempt_at: _Optional[str] = ..., last_status_code: _Optional[int] = ..., last_error: _Optional[str] = ..., created_at: _Optional[str] = ..., delivered_at: _Optional[str] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("data", "total")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    total: int
    def __init__(self, data: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class RevokeDeviceRequest(_message.Message):
    __slots__ = ("client_id", "device_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    device_id: str
    def __init__(self, client_id: _Optional[str] = ..., device_id: _Optional[str] = ...) -> None: ...

class ListAuditLogRequest(_message.Message):
    __slots__ = ("client_id", "action", "since", "limit", "offset")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    action: str
    since: str
    limit: int
    offset: int
    def __init__(self, client_id: _Optional[str] = ..., action: _Optional[str] = ..., since: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class AuditLogEntry(_message.Message):
    __slots__ = ("id", "at", "actor", "actor_name", "action", "client_id", "target_id", "replica", "outcome", "summary")
    ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    id: int
    at: str
    actor: str
    actor_name: str
    action: str
    client_id: str
    target_id: str
    replica: str
    outcome: str
    summary: str
    def __init__(self, id: _Optional[int] = ..., at: _Optional[str] = ..., actor: _Optional[str] = ..., actor_name: _Optional[str] = ..., action: _Optional[str] = ..., client_id: _Optional[str] = ..., target_id: _Optional[str] = ..., replica: _Optional[str] = ..., outcome: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class ListAuditLogResponse(_message.Message):
    __slots__ = ("data", "total")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[AuditLogEntry]
    total: int
    def __init__(self, data: _Optional[_Iterable[_Union[AuditLogEntry, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class WorkSignature(_message.Message):
    __slots__ = ("key_id", "value", "manifest")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    value: str
    manifest: str
    def __init__(self, key_id: _Optional[str] = ..., value: _Optional[str] = ..., manifest: _Optional[str] = ...) -> None: ...

class StartDeploymentRequest(_message.Message):
    __slots__ = ("id", "signature")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    id: str
    signature: WorkSignature
    def __init__(self, id: _Optional[str] = ..., signature: _Optional[_Union[WorkSignature, _Mapping]] = ...) -> None: ...

class RollbackDeploymentRequest(_message.Message):
    __slots__ = ("id", "signature")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    id: str
    signature: WorkSignature
    def __init__(self, id: _Optional[str] = ..., signature: _Optional[_Union[WorkSignature, _Mapping]] = ...) -> None: ...

class GetDeploymentManifestRequest(_message.Message):
    __slots__ = ("id", "rollback")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    id: str
    rollback: bool
    def __init__(self, id: _Optional[str] = ..., rollback: _Optional[bool] = ...) -> None: ...

class DeploymentManifest(_message.Message):
    __slots__ = ("manifest", "payload")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    manifest: str
    payload: str
    def __init__(self, manifest: _Optional[str] = ..., payload: _Optional[str] = ...) -> None: ...

class RegisterSignerRequest(_message.Message):
    __slots__ = ("client_id", "public_key", "name")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    public_key: str
    name: str
    def __init__(self, client_id: _Optional[str] = ..., public_key: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListSignersRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class RevokeSignerRequest(_message.Message):
    __slots__ = ("client_id", "key_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    key_id: str
    def __init__(self, client_id: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class Signer(_message.Message):
    __slots__ = ("key_id", "client_id", "name", "public_key", "created_at", "created_by", "revoked_at")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    client_id: str
    name: str
    public_key: str
    created_at: str
    created_by: str
    revoked_at: str
    def __init__(self, key_id: _Optional[str] = ..., client_id: _Optional[str] = ..., name: _Optional[str] = ..., public_key: _Optional[str] = ..., created_at: _Optional[str] = ..., created_by: _Optional[str] = ..., revoked_at: _Optional[str] = ...) -> None: ...

class ListSignersResponse(_message.Message):
    __slots__ = ("data", "total")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[Signer]
    total: int
    def __init__(self, data: _Optional[_Iterable[_Union[Signer, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class PublishTrustSetRequest(_message.Message):
    __slots__ = ("client_id", "document", "key_id", "signature")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    document: str
    key_id: str
    signature: str
    def __init__(self, client_id: _Optional[str] = ..., document: _Optional[str] = ..., key_id: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class TrustSet(_message.Message):
    __slots__ = ("client_id", "document", "key_id", "signature", "serial", "published_at")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    document: str
    key_id: str
    signature: str
    serial: int
    published_at: str
    def __init__(self, client_id: _Optional[str] = ..., document: _Optional[str] = ..., key_id: _Optional[str] = ..., signature: _Optional[str] = ..., serial: _Optional[int] = ..., published_at: _Optional[str] = ...) -> None: ...

class ClientPolicyRef(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class ClientPolicy(_message.Message):
    __slots__ = ("client_id", "require_approval_over", "require_approval_for_all", "updated_at", "updated_by")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_APPROVAL_OVER_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_APPROVAL_FOR_ALL_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    require_approval_over: int
    require_approval_for_all: bool
    updated_at: str
    updated_by: str
    def __init__(self, client_id: _Optional[str] = ..., require_approval_over: _Optional[int] = ..., require_approval_for_all: _Optional[bool] = ..., updated_at: _Optional[str] = ..., updated_by: _Optional[str] = ...) -> None: ...

class ApproveDeploymentRequest(_message.Message):
    __slots__ = ("id", "comment")
    ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    comment: str
    def __init__(self, id: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class ListDeploymentAuditRequest(_message.Message):
    __slots__ = ("id", "limit", "offset")
    ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    id: str
    limit: int
    offset: int
    def __init__(self, id: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("at", "actor", "actor_name", "from_status", "to_status", "reason")
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    FROM_STATUS_FIELD_NUMBER: _ClassVar[int]
    TO_STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    at: str
    actor: str
    actor_name: str
    from_status: str
    to_status: str
    reason: str
    def __init__(self, at: _Optional[str] = ..., actor: _Optional[str] = ..., actor_name: _Optional[str] = ..., from_status: _Optional[str] = ..., to_status: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListDeploymentAuditResponse(_message.Message):
    __slots__ = ("data", "total")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    total: int
    def __init__(self, data: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class CreateClientRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListClientsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListClientsResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[_types_pb2.Client]
    def __init__(self, data: _Optional[_Iterable[_Union[_types_pb2.Client, _Mapping]]] = ...) -> None: ...

class CreateApiTokenRequest(_message.Message):
    __slots__ = ("client_ids", "role", "name", "expires_in_seconds")
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    role: str
    name: str
    expires_in_seconds: float
    def __init__(self, client_ids: _Optional[_Iterable[str]] = ..., role: _Optional[str] = ..., name: _Optional[str] = ..., expires_in_seconds: _Optional[float] = ...) -> None: ...

class ApiToken(_message.Message):
    __slots__ = ("id", "name", "role", "partner", "client_ids", "created_at", "expires_at", "revoked", "created_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PARTNER_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    role: str
    partner: bool
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    created_at: str
    expires_at: str
    revoked: bool
    created_by: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., role: _Optional[str] = ..., partner: _Optional[bool] = ..., client_ids: _Optional[_Iterable[str]] = ..., created_at: _Optional[str] = ..., expires_at: _Optional[str] = ..., revoked: _Optional[bool] = ..., created_by: _Optional[str] = ...) -> None: ...

class ListApiTokensRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class ListApiTokensResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[ApiToken]
    def __init__(self, data: _Optional[_Iterable[_Union[ApiToken, _Mapping]]] = ...) -> None: ...

class RevokeApiTokenRequest(_message.Message):
    __slots__ = ("token_id",)
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    def __init__(self, token_id: _Optional[str] = ...) -> None: ...

class CreatedSecret(_message.Message):
    __slots__ = ("id", "token")
    ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: str
    token: str
    def __init__(self, id: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class CreateEnrollmentTokenRequest(_message.Message):
    __slots__ = ("client_id", "expires_in_seconds", "max_uses", "group_ids", "name", "device_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    expires_in_seconds: float
    max_uses: int
    group_ids: _containers.RepeatedScalarFieldContainer[str]
    name: str
    device_id: str
    def __init__(self, client_id: _Optional[str] = ..., expires_in_seconds: _Optional[float] = ..., max_uses: _Optional[int] = ..., group_ids: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., device_id: _Optional[str] = ...) -> None: ...

class EnrollmentToken(_message.Message):
    __slots__ = ("id", "client_id", "name", "expires_at", "max_uses", "uses", "revoked", "group_ids", "created_at", "created_by", "device_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    client_id: str
    name: str
    expires_at: str
    max_uses: int
    uses: int
    revoked: bool
    group_ids: _containers.RepeatedScalarFieldContainer[str]
    created_at: str
    created_by: str
    device_id: str
    def __init__(self, id: _Optional[str] = ..., client_id: _Optional[str] = ..., name: _Optional[str] = ..., expires_at: _Optional[str] = ..., max_uses: _Optional[int] = ..., uses: _Optional[int] = ..., revoked: _Optional[bool] = ..., group_ids: _Optional[_Iterable[str]] = ..., created_at: _Optional[str] = ..., created_by: _Optional[str] = ..., device_id: _Optional[str] = ...) -> None: ...

class ListEnrollmentTokensRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class ListEnrollmentTokensResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[EnrollmentToken]
    def __init__(self, data: _Optional[_Iterable[_Union[EnrollmentToken, _Mapping]]] = ...) -> None: ...

class RevokeEnrollmentTokenRequest(_message.Message):
    __slots__ = ("client_id", "token_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    token_id: str
    def __init__(self, client_id: _Optional[str] = ..., token_id: _Optional[str] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("client_id", "limit", "offset", "filter")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    limit: int
    offset: int
    filter: str
    def __init__(self, client_id: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., filter: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("data", "total")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[_types_pb2.Device]
    total: int
    def __init__(self, data: _Optional[_Iterable[_Union[_types_pb2.Device, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetDeviceRequest(_message.Message):
    __slots__ = ("client_id", "device_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    device_id: str
    def __init__(self, client_id: _Optional[str] = ..., device_id: _Optional[str] = ...) -> None: ...

class UpdateDeviceRequest(_message.Message):
    __slots__ = ("client_id", "device_id", "tags", "set_tags", "site", "set_site")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SET_TAGS_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    SET_SITE_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    device_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    set_tags: bool
    site: str
    set_site: bool
    def __init__(self, client_id: _Optional[str] = ..., device_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., set_tags: _Optional[bool] = ..., site: _Optional[str] = ..., set_site: _Optional[bool] = ...) -> None: ...

class ListDeviceDeploymentsRequest(_message.Message):
    __slots__ = ("client_id", "device_id", "status", "sort_by", "sort_order", "page_size", "cursor")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    SORT_ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    device_id: str
    status: str
    sort_by: str
    sort_order: str
    page_size: int
    cursor: str
    def __init__(self, client_id: _Optional[str] = ..., device_id: _Optional[str] = ..., status: _Optional[str] = ..., sort_by: _Optional[str] = ..., sort_order: _Optional[str] = ..., page_size: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListDeviceDeploymentsResponse(_message.Message):
    __slots__ = ("data", "total_count", "next_cursor")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[_types_pb2.EnrollmentStatusRef]
    total_count: int
    next_cursor: str
    def __init__(self, data: _Optional[_Iterable[_Union[_types_pb2.EnrollmentStatusRef, _Mapping]]] = ..., total_count: _Optional[int] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class GetDeviceDeploymentRequest(_message.Message):
    __slots__ = ("client_id", "device_id", "deployment_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    device_id: str
    deployment_id: str
    def __init__(self, client_id: _Optional[str] = ..., device_id: _Optional[str] = ..., deployment_id: _Optional[str] = ...) -> None: ...

class Group(_message.Message):
    __slots__ = ("id", "client_id", "name", "device_ids", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    client_id: str
    name: str
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    created_at: str
    def __init__(self, id: _Optional[str] = ..., client_id: _Optional[str] = ..., name: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ..., created_at: _Optional[str] = ...) -> None: ...

class CreateGroupRequest(_message.Message):
    __slots__ = ("client_id", "name")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    name: str
    def __init__(self, client_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListGroupsRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class ListGroupsResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[Group]
    def __init__(self, data: _Optional[_Iterable[_Union[Group, _Mapping]]] = ...) -> None: ...

class GroupMembersRequest(_message.Message):
    __slots__ = ("client_id", "group_id", "device_ids")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    group_id: str
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_id: _Optional[str] = ..., group_id: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Script(_message.Message):
    __slots__ = ("id", "client_id", "name", "interpreter", "body", "parameters_schema", "rollback_body", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INTERPRETER_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_BODY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    client_id: str
    name: str
    interpreter: str
    body: str
    parameters_schema: str
    rollback_body: str
    created_at: str
    def __init__(self, id: _Optional[str] = ..., client_id: _Optional[str] = ..., name: _Optional[str] = ..., interpreter: _Optional[str] = ..., body: _Optional[str] = ..., parameters_schema: _Optional[str] = ..., rollback_body: _Optional[str] = ..., created_at: _Optional[str] = ...) -> None: ...

class CreateScriptRequest(_message.Message):
    __slots__ = ("client_id", "name", "interpreter", "body", "parameters_schema", "rollback_body")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INTERPRETER_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_BODY_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    name: str
    interpreter: str
    body: str
    parameters_schema: str
    rollback_body: str
    def __init__(self, client_id: _Optional[str] = ..., name: _Optional[str] = ..., interpreter: _Optional[str] = ..., body: _Optional[str] = ..., parameters_schema: _Optional[str] = ..., rollback_body: _Optional[str] = ...) -> None: ...

class ListScriptsRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class ListScriptsResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[Script]
    def __init__(self, data: _Optional[_Iterable[_Union[Script, _Mapping]]] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("id", "client_id", "name", "sha256", "size", "kind", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    client_id: str
    name: str
    sha256: str
    size: int
    kind: str
    created_at: str
    def __init__(self, id: _Optional[str] = ..., client_id: _Optional[str] = ..., name: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., kind: _Optional[str] = ..., created_at: _Optional[str] = ...) -> None: ...

class UploadArtifactChunk(_message.Message):
    __slots__ = ("client_id", "name", "data")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    name: str
    data: bytes
    def __init__(self, client_id: _Optional[str] = ..., name: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ListArtifactsRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class ListArtifactsResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[Artifact]
    def __init__(self, data: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ...) -> None: ...

class CreateDeploymentRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _types_pb2.DeploymentSpec
    def __init__(self, spec: _Optional[_Union[_types_pb2.DeploymentSpec, _Mapping]] = ...) -> None: ...

class UpdateDeploymentRequest(_message.Message):
    __slots__ = ("id", "spec")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: _types_pb2.DeploymentSpec
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[_types_pb2.DeploymentSpec, _Mapping]] = ...) -> None: ...

class DeploymentRef(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteDeploymentResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("status", "type", "limit", "offset", "client_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    status: str
    type: str
    limit: int
    offset: int
    client_id: str
    def __init__(self, status: _Optional[str] = ..., type: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., client_id: _Optional[str] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("data", "total")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[_types_pb2.Deployment]
    total: int
    def __init__(self, data: _Optional[_Iterable[_Union[_types_pb2.Deployment, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class InitializeDeploymentResponse(_message.Message):
    __slots__ = ("deployment", "preview")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    deployment: _types_pb2.Deployment
    preview: _types_pb2.InitializePreview
    def __init__(self, deployment: _Optional[_Union[_types_pb2.Deployment, _Mapping]] = ..., preview: _Optional[_Union[_types_pb2.InitializePreview, _Mapping]] = ...) -> None: ...

class ListDeploymentDevicesRequest(_message.Message):
    __slots__ = ("id", "status", "batch_number", "limit", "offset")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BATCH_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: str
    batch_number: int
    limit: int
    offset: int
    def __init__(self, id: _Optional[str] = ..., status: _Optional[str] = ..., batch_number: _Optional[int] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListDeploymentDevicesResponse(_message.Message):
    __slots__ = ("data", "total")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[_types_pb2.DeploymentDevice]
    total: int
    def __init__(self, data: _Optional[_Iterable[_Union[_types_pb2.DeploymentDevice, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class RetryDeploymentDeviceRequest(_message.Message):
    __slots__ = ("id", "device_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    device_id: str
    def __init__(self, id: _Optional[str] = ..., device_id: _Optional[str] = ...) -> None: ...

class BatchProgress(_message.Message):
    __slots__ = ("batch_number", "total", "pending", "running", "completed", "failed", "skipped")
    BATCH_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    batch_number: int
    total: int
    pending: int
    running: int
    completed: int
    failed: int
    skipped: int
    def __init__(self, batch_number: _Optional[int] = ..., total: _Optional[int] = ..., pending: _Optional[int] = ..., running: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., skipped: _Optional[int] = ...) -> None: ...

class DeploymentEvent(_message.Message):
    __slots__ = ("deployment", "batches", "recent_failures")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    RECENT_FAILURES_FIELD_NUMBER: _ClassVar[int]
    deployment: _types_pb2.Deployment
    batches: _containers.RepeatedCompositeFieldContainer[BatchProgress]
    recent_failures: _containers.RepeatedCompositeFieldContainer[_types_pb2.DeploymentDevice]
    def __init__(self, deployment: _Optional[_Union[_types_pb2.Deployment, _Mapping]] = ..., batches: _Optional[_Iterable[_Union[BatchProgress, _Mapping]]] = ..., recent_failures: _Optional[_Iterable[_Union[_types_pb2.DeploymentDevice, _Mapping]]] = ...) -> None: ...
