"""AdminService: deployments (seed 004). Converts between protobuf and the seed's JSON shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc.aio
from google.protobuf import json_format
from google.protobuf.message import Message

from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import types_pb2 as tpb
from coordinator.api.deployment_actions import DeploymentActions
from coordinator.api.grpc_util import metadata_bearer, streaming, unary


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def to_proto(data: dict[str, Any], message: Message) -> Any:
    return json_format.ParseDict(_strip_none(data), message, ignore_unknown_fields=True)


def _integral(value: Any) -> Any:
    """Struct/Value numbers are doubles: give whole numbers back their JSON integer form."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def spec_body(spec: tpb.DeploymentSpec) -> dict[str, Any]:
    """The seed's create body from its protobuf form, numbers as a JSON client would send them."""
    return dict(_integral(json_format.MessageToDict(spec)))


def _signature(request: pb.StartDeploymentRequest | pb.RollbackDeploymentRequest) -> dict[str, str] | None:
    if not request.HasField("signature"):
        return None
    sig = request.signature
    return {"keyId": sig.key_id, "value": sig.value, "manifest": sig.manifest}


class DeploymentRpcs(DeploymentActions):
    @unary
    async def CreateDeployment(self, request: pb.CreateDeploymentRequest, context: grpc.aio.ServicerContext) -> tpb.Deployment:
        return to_proto(await self.create(metadata_bearer(context), spec_body(request.spec)), tpb.Deployment())

    @unary
    async def ListDeployments(self, request: pb.ListDeploymentsRequest, context: grpc.aio.ServicerContext) -> pb.ListDeploymentsResponse:
        rows, total = await self.list_all(metadata_bearer(context), status=request.status or None, type_=request.type or None,
                                      limit=request.limit or None, offset=request.offset or None,
                                      client_id=request.client_id or None)
        return pb.ListDeploymentsResponse(data=[to_proto(r, tpb.Deployment()) for r in rows], total=total)

    @unary
    async def GetDeployment(self, request: pb.DeploymentRef, context: grpc.aio.ServicerContext) -> tpb.Deployment:
        return to_proto(await self.get(metadata_bearer(context), request.id), tpb.Deployment())

    @unary
    async def UpdateDeployment(self, request: pb.UpdateDeploymentRequest, context: grpc.aio.ServicerContext) -> tpb.Deployment:
        body = spec_body(request.spec)
        return to_proto(await self.update(metadata_bearer(context), request.id, body), tpb.Deployment())

    @unary
    async def DeleteDeployment(self, request: pb.DeploymentRef, context: grpc.aio.ServicerContext) -> pb.DeleteDeploymentResponse:
        out = await self.delete(metadata_bearer(context), request.id)
        return pb.DeleteDeploymentResponse(id=out["id"])

    @unary
    async def InitializeDeployment(self, request: pb.DeploymentRef, context: grpc.aio.ServicerContext) -> pb.InitializeDeploymentResponse:
        dep, preview = await self.initialize(metadata_bearer(context), request.id)
        return pb.InitializeDeploymentResponse(deployment=to_proto(dep, tpb.Deployment()),
                                               preview=to_proto(preview, tpb.InitializePreview()))

    @unary
    async def StartDeployment(self, request: pb.StartDeploymentRequest, context: grpc.aio.ServicerContext) -> tpb.Deployment:
        out = await self.action(metadata_bearer(context), "start", request.id, signature=_signature(request))
        return to_proto(out, tpb.Deployment())

    @unary
    async def GetDeploymentManifest(self, request: pb.GetDeploymentManifestRequest,
                                    context: grpc.aio.ServicerContext) -> pb.DeploymentManifest:
        out = await self.manifest(metadata_bearer(context), request.id, request.rollback)
        return pb.DeploymentManifest(manifest=out["manifest"], payload=json.dumps(out["payload"], sort_keys=True))

    @unary
    async def PauseDeployment(self, request: pb.DeploymentRef, context: grpc.aio.ServicerContext) -> tpb.Deployment:
        return to_proto(await self.action(metadata_bearer(context), "pause", request.id), tpb.Deployment())

    @unary
    async def ResumeDeployment(self, request: pb.DeploymentRef, context: grpc.aio.ServicerContext) -> tpb.Deployment:
        return to_proto(await self.action(metadata_bearer(context), "resume", request.id), tpb.Deployment())

    @unary
    async def CancelDeployment(self, request: pb.DeploymentRef, context: grpc.aio.ServicerContext) -> tpb.Deployment:
        return to_proto(await self.cancel(metadata_bearer(context), request.id), tpb.Deployment())

    @unary
    async def RollbackDeployment(self, request: pb.RollbackDeploymentRequest,
                                 context: grpc.aio.ServicerContext) -> tpb.Deployment:
        return to_proto(await self.rollback(metadata_bearer(context), request.id, signature=_signature(request)),
                        tpb.Deployment())

    @unary
    async def ListDeploymentDevices(self, request: pb.ListDeploymentDevicesRequest, context: grpc.aio.ServicerContext) -> pb.ListDeploymentDevicesResponse:
        rows, total = await self.devices(
            metadata_bearer(context), request.id, status=request.status or None,
            batch_number=request.batch_number if request.HasField("batch_number") else None,
            limit=request.limit or None, offset=request.offset or None)
        return pb.ListDeploymentDevicesResponse(data=[to_proto(r, tpb.DeploymentDevice()) for r in rows], total=total)

    @unary
    async def RetryDeploymentDevice(self, request: pb.RetryDeploymentDeviceRequest, context: grpc.aio.ServicerContext) -> tpb.DeploymentDevice:
        return to_proto(await self.retry(metadata_bearer(context), request.id, request.device_id), tpb.DeploymentDevice())

    @streaming
    async def WatchDeployment(self, request: pb.DeploymentRef, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.DeploymentEvent]:
        async for snap in self.watch(metadata_bearer(context), request.id):
            yield to_proto(snap, pb.DeploymentEvent())
