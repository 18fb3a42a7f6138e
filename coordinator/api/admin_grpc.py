"""AdminService, composed from one mixin per area so each area's RPCs live beside its rules."""

from __future__ import annotations

from common.convoy.v1 import admin_pb2_grpc
from coordinator.api.admin_tenancy import TenancyRpcs


class AdminServicer(TenancyRpcs, admin_pb2_grpc.AdminServiceServicer):
    pass
