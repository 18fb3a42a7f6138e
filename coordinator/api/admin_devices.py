"""AdminService: enrollment tokens, devices, and their enrollment history (seed 000)."""

from __future__ import annotations

from typing import Any

import grpc.aio

from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import types_pb2 as tpb
from coordinator.api.base import Api
from coordinator.api.grpc_util import metadata_bearer, unary
from coordinator.service import devices, enrollment, history


def device_message(d: dict[str, Any]) -> tpb.Device:
    """A service-layer device dict as the proto's Device (None = unset)."""
    facts = d["facts"]
    msg = tpb.Device(
        id=d["id"], client_id=d["client_id"], machine_id=d["machine_id"],
        facts=tpb.DeviceFacts(
            hostname=facts["hostname"], os=facts["os"], os_version=facts["os_version"], arch=facts["arch"],
            cpu_count=facts["cpu_count"], memory_bytes=facts["memory_bytes"],
            disks=[tpb.Disk(mountpoint=str(k.get("mountpoint", "")), fstype=str(k.get("fstype", "")),
                            total_bytes=int(k.get("total_bytes", 0)), free_bytes=int(k.get("free_bytes", 0)))
                   for k in facts["disks"] if isinstance(k, dict)],
            ip_addresses=[str(ip) for ip in facts["ip_addresses"]]),
        tags=d["tags"], site=d["site"], online=d["online"], last_seen_at=d["last_seen_at"] or "",
        agent_version=d["agent_version"], maintenance_windows=d["maintenance_windows"],
        group_ids=d["group_ids"], created_at=d["created_at"] or "", updated_at=d["updated_at"] or "",
        revoked_at=d.get("revoked_at") or "",
        identity=d["identity"], certificate_expires_at=d["certificate_expires_at"] or "")
    if d["latest_enrollment"] is not None:
        msg.latest_enrollment.CopyFrom(tpb.EnrollmentStatusRef(**d["latest_enrollment"]))
    return msg


def record_message(r: dict[str, Any]) -> tpb.DeviceDeployment:
    msg = tpb.DeviceDeployment(
        id=r["id"], status=r["status"], enrollment_date=r["enrollment_date"],
        enrollment_token_id=r["enrollment_token_id"], error_logs=r["error_logs"] or [],
        has_error_logs=r["error_logs"] is not None, created_at=r["created_at"], updated_at=r["updated_at"])
    if r["user_id"] is not None:
        msg.user_id = r["user_id"]
    return msg


class DeviceRpcs(Api):
    @unary
    async def CreateEnrollmentToken(self, request: pb.CreateEnrollmentTokenRequest,
                                    context: grpc.aio.ServicerContext) -> pb.CreatedSecret:
        out = await self.call(metadata_bearer(context), enrollment.create_token, request.client_id,
                              request.expires_in_seconds, request.max_uses, list(request.group_ids),
                              request.name, self.app.clock.now(), device_id=request.device_id)
        return pb.CreatedSecret(**out)

    @unary
    async def ListEnrollmentTokens(self, request: pb.ListEnrollmentTokensRequest,
                                   context: grpc.aio.ServicerContext) -> pb.ListEnrollmentTokensResponse:
        rows = await self.read(metadata_bearer(context), enrollment.list_tokens, request.client_id)
        return pb.ListEnrollmentTokensResponse(data=[pb.EnrollmentToken(**r) for r in rows])

    @unary
    async def RevokeEnrollmentToken(self, request: pb.RevokeEnrollmentTokenRequest,
                                    context: grpc.aio.ServicerContext) -> pb.EnrollmentToken:
        out = await self.call(metadata_bearer(context), enrollment.revoke_token, request.client_id,
                              request.token_id, self.app.clock.now())
        return pb.EnrollmentToken(**out)

    @unary
    async def ListDevices(self, request: pb.ListDevicesRequest, context: grpc.aio.ServicerContext) -> pb.ListDevicesResponse:
        out = await self.read(metadata_bearer(context), devices.list_devices, request.client_id,
                              request.limit, request.offset, request.filter)
        return pb.ListDevicesResponse(data=[device_message(d) for d in out["data"]], total=out["total"])

    @unary
    async def GetDevice(self, request: pb.GetDeviceRequest, context: grpc.aio.ServicerContext) -> tpb.Device:
        out = await self.read(metadata_bearer(context), devices.get_device, request.client_id, request.device_id)
        return device_message(out)

    @unary
    async def UpdateDevice(self, request: pb.UpdateDeviceRequest, context: grpc.aio.ServicerContext) -> tpb.Device:
        out = await self.call(metadata_bearer(context), devices.update_device, request.client_id, request.device_id,
                              list(request.tags) if request.set_tags else None,
                              request.site if request.set_site else None, self.app.clock.now())
        return device_message(out)

    @unary
    async def ListDeviceDeployments(self, request: pb.ListDeviceDeploymentsRequest,
                                    context: grpc.aio.ServicerContext) -> pb.ListDeviceDeploymentsResponse:
        out = await self.read(metadata_bearer(context), history.list_deployments, request.client_id,
                              request.device_id, status=request.status, sort_by=request.sort_by,
                              sort_order=request.sort_order,
                              page_size=request.page_size if request.page_size else None,
                              cursor=request.cursor)
        return pb.ListDeviceDeploymentsResponse(
            data=[tpb.EnrollmentStatusRef(**r) for r in out["data"]], total_count=out["total_count"],
            next_cursor=out["next_cursor"] or "")

    @unary
    async def GetDeviceDeployment(self, request: pb.GetDeviceDeploymentRequest,
                                  context: grpc.aio.ServicerContext) -> tpb.DeviceDeployment:
        out = await self.read(metadata_bearer(context), history.get_deployment, request.client_id,
                              request.device_id, request.deployment_id)
        return record_message(out)
