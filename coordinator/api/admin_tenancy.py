"""AdminService: clients and API tokens."""

from __future__ import annotations

import grpc.aio

from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import types_pb2 as tpb
from coordinator.api.base import Api
from coordinator.api.grpc_util import metadata_bearer, unary
from coordinator.service import tenancy


class TenancyRpcs(Api):
    @unary
    async def CreateClient(self, request: pb.CreateClientRequest, context: grpc.aio.ServicerContext) -> tpb.Client:
        out = await self.call(metadata_bearer(context), tenancy.create_client, request.name, self.app.clock.now())
        return tpb.Client(**out)

    @unary
    async def ListClients(self, request: pb.ListClientsRequest, context: grpc.aio.ServicerContext) -> pb.ListClientsResponse:
        rows = await self.read(metadata_bearer(context), tenancy.list_clients)
        return pb.ListClientsResponse(data=[tpb.Client(**r) for r in rows])

    @unary
    async def CreateApiToken(self, request: pb.CreateApiTokenRequest, context: grpc.aio.ServicerContext) -> pb.CreatedSecret:
        out = await self.call(metadata_bearer(context), tenancy.create_api_token, list(request.client_ids),
                              request.role or "viewer", request.name, self.app.clock.now(),
                              expires_in_s=request.expires_in_seconds)
        return pb.CreatedSecret(**out)

    @unary
    async def ListApiTokens(self, request: pb.ListApiTokensRequest,
                            context: grpc.aio.ServicerContext) -> pb.ListApiTokensResponse:
        rows = await self.read(metadata_bearer(context), tenancy.list_api_tokens, request.client_id)
        return pb.ListApiTokensResponse(data=[pb.ApiToken(**r) for r in rows])  # type: ignore[arg-type]

    @unary
    async def RevokeApiToken(self, request: pb.RevokeApiTokenRequest,
                             context: grpc.aio.ServicerContext) -> pb.ApiToken:
        out = await self.call(metadata_bearer(context), tenancy.revoke_api_token, request.token_id,
                              self.app.clock.now())
        return pb.ApiToken(**out)  # type: ignore[arg-type]
