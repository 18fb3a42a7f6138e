"""AdminService: approval policies, deployment approvals (docs/approvals.md) and the audit trail."""

from __future__ import annotations

from typing import Any

import grpc.aio

from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import types_pb2 as tpb
from coordinator.api.admin_deployments import to_proto
from coordinator.api.deployment_actions import DeploymentActions
from coordinator.api.grpc_util import metadata_bearer, unary
from coordinator.service import approvals, audit


def _policy_body(request: pb.ClientPolicy) -> dict[str, Any]:
    return {"requireApprovalOver": request.require_approval_over if request.HasField("require_approval_over") else None,
            "requireApprovalForAll": request.require_approval_for_all}


class ApprovalRpcs(DeploymentActions):
    @unary
    async def GetClientPolicy(self, request: pb.ClientPolicyRef, context: grpc.aio.ServicerContext) -> pb.ClientPolicy:
        out = await self.read(metadata_bearer(context), approvals.get_policy, request.client_id)
        return to_proto(out, pb.ClientPolicy())

    @unary
    async def SetClientPolicy(self, request: pb.ClientPolicy, context: grpc.aio.ServicerContext) -> pb.ClientPolicy:
        out = await self.call(metadata_bearer(context), approvals.set_policy, request.client_id,
                              _policy_body(request), self.app.clock.now())
        return to_proto(out, pb.ClientPolicy())

    @unary
    async def ApproveDeployment(self, request: pb.ApproveDeploymentRequest,
                                context: grpc.aio.ServicerContext) -> tpb.Deployment:
        out = await self.approve(metadata_bearer(context), request.id, request.comment)
        return to_proto(out, tpb.Deployment())

    @unary
    async def ListDeploymentAudit(self, request: pb.ListDeploymentAuditRequest,
                                  context: grpc.aio.ServicerContext) -> pb.ListDeploymentAuditResponse:
        rows, total = await self.read(metadata_bearer(context), audit.list_events, request.id,
                                      limit=request.limit or None, offset=request.offset or None)
        return pb.ListDeploymentAuditResponse(data=[to_proto(r, pb.AuditEntry()) for r in rows], total=total)
