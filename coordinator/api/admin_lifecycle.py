"""AdminService: revoking devices and reading the global audit log (docs/security.md)."""

from __future__ import annotations

import grpc.aio

from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import types_pb2 as tpb
from coordinator.api.admin_devices import device_message
from coordinator.api.base import Api
from coordinator.api.device_actions import revoke
from coordinator.api.grpc_util import metadata_bearer, unary
from coordinator.service import audit_log


class LifecycleRpcs(Api):
    @unary
    async def RevokeDevice(self, request: pb.RevokeDeviceRequest, context: grpc.aio.ServicerContext) -> tpb.Device:  # noqa: N802
        return device_message(await revoke(self, metadata_bearer(context), request.client_id, request.device_id))

    @unary
    async def ListAuditLog(self, request: pb.ListAuditLogRequest,  # noqa: N802
                           context: grpc.aio.ServicerContext) -> pb.ListAuditLogResponse:
        rows, total = await self.read(metadata_bearer(context), audit_log.list_entries, client_id=request.client_id,
                                      action_name=request.action, since=request.since,
                                      limit=request.limit or None, offset=request.offset or None)
        return pb.ListAuditLogResponse(total=total, data=[pb.AuditLogEntry(
            id=r["id"], at=r["at"], actor=r["actor"], actor_name=r["actorName"], action=r["action"],
            client_id=r["clientId"] or "", target_id=r["targetId"], replica=r["replica"], outcome=r["outcome"],
            summary=r["summary"]) for r in rows])
