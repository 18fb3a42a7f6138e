"""AgentService, composed like AdminService."""

from __future__ import annotations

from common.convoy.v1 import agent_pb2_grpc
from coordinator.api.agent_enrollment import EnrollmentRpcs
from coordinator.api.agent_stream import StreamRpcs


class AgentServicer(EnrollmentRpcs, StreamRpcs, agent_pb2_grpc.AgentServiceServicer):
    pass
