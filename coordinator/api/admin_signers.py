"""AdminService: signer keys and trust-set documents (docs/security.md, "Signed work")."""

from __future__ import annotations

from typing import Any

import grpc.aio

from common.convoy.v1 import admin_pb2 as pb
from coordinator.api.admin_deployments import to_proto
from coordinator.api.base import Api
from coordinator.api.grpc_util import metadata_bearer, unary
from coordinator.service import signers


def _signer(out: dict[str, Any]) -> pb.Signer:
    return to_proto(out, pb.Signer())


class SignerRpcs(Api):
    @unary
    async def RegisterSigner(self, request: pb.RegisterSignerRequest, context: grpc.aio.ServicerContext) -> pb.Signer:
        out = await self.call(metadata_bearer(context), signers.register, request.client_id or None,
                              {"publicKey": request.public_key, "name": request.name}, self.app.clock.now())
        return _signer(out)

    @unary
    async def ListSigners(self, request: pb.ListSignersRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListSignersResponse:
        rows = await self.read(metadata_bearer(context), signers.list_signers, request.client_id or None)
        return pb.ListSignersResponse(data=[_signer(r) for r in rows], total=len(rows))

    @unary
    async def RevokeSigner(self, request: pb.RevokeSignerRequest, context: grpc.aio.ServicerContext) -> pb.Signer:
        out = await self.call(metadata_bearer(context), signers.revoke, request.client_id or None, request.key_id,
                              self.app.clock.now())
        return _signer(out)

    @unary
    async def PublishTrustSet(self, request: pb.PublishTrustSetRequest,
                              context: grpc.aio.ServicerContext) -> pb.TrustSet:
        body = {"document": request.document, "keyId": request.key_id, "signature": request.signature}
        out = await self.call(metadata_bearer(context), signers.publish_trust_set, request.client_id or None, body,
                              self.app.clock.now())
        return to_proto(out, pb.TrustSet())

    @unary
    async def GetTrustSet(self, request: pb.ListSignersRequest, context: grpc.aio.ServicerContext) -> pb.TrustSet:
        out = await self.read(metadata_bearer(context), signers.get_trust_set, request.client_id or None)
        return to_proto(out, pb.TrustSet())
