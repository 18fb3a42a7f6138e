"""AdminService, composed from one mixin per area so each area's RPCs live beside its rules."""

from __future__ import annotations

from common.convoy.v1 import admin_pb2_grpc
from coordinator.api.admin_approvals import ApprovalRpcs
from coordinator.api.admin_deployments import DeploymentRpcs
from coordinator.api.admin_devices import DeviceRpcs
from coordinator.api.admin_lifecycle import LifecycleRpcs
from coordinator.api.admin_payloads import PayloadRpcs
from coordinator.api.admin_signers import SignerRpcs
from coordinator.api.admin_tenancy import TenancyRpcs
from coordinator.api.admin_webhooks import WebhookRpcs


class AdminServicer(TenancyRpcs, DeviceRpcs, PayloadRpcs, DeploymentRpcs, ApprovalRpcs, SignerRpcs,
                    WebhookRpcs, LifecycleRpcs, admin_pb2_grpc.AdminServiceServicer):
    pass
