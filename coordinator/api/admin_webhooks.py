"""AdminService: a client's webhooks and their deliveries (docs/webhooks.md)."""

from __future__ import annotations

import grpc.aio

from common.convoy.v1 import admin_pb2 as pb
from coordinator.api.admin_deployments import to_proto
from coordinator.api.base import Api
from coordinator.api.grpc_util import metadata_bearer, unary
from coordinator.service import webhooks


class WebhookRpcs(Api):
    @unary
    async def CreateWebhook(self, request: pb.CreateWebhookRequest, context: grpc.aio.ServicerContext) -> pb.Webhook:
        out = await self.call(metadata_bearer(context), webhooks.create, request.client_id, request.url,
                              list(request.events), self.app.clock.now(), self.app.webhook_keys,
                              self.app.settings.webhooks_allow_link_local)
        return to_proto(out, pb.Webhook())

    @unary
    async def ListWebhooks(self, request: pb.ListWebhooksRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListWebhooksResponse:
        rows = await self.read(metadata_bearer(context), webhooks.list_webhooks, request.client_id)
        return pb.ListWebhooksResponse(data=[to_proto(r, pb.Webhook()) for r in rows], total=len(rows))

    @unary
    async def DeleteWebhook(self, request: pb.WebhookRef, context: grpc.aio.ServicerContext) -> pb.Webhook:
        out = await self.call(metadata_bearer(context), webhooks.delete, request.client_id, request.id)
        return to_proto(out, pb.Webhook())

    @unary
    async def ListWebhookDeliveries(self, request: pb.ListWebhookDeliveriesRequest,
                                    context: grpc.aio.ServicerContext) -> pb.ListWebhookDeliveriesResponse:
        rows, total = await self.read(metadata_bearer(context), webhooks.list_deliveries, request.client_id,
                                      request.webhook_id, request.status or None, request.limit or None)
        return pb.ListWebhookDeliveriesResponse(data=[to_proto(r, pb.WebhookDelivery()) for r in rows], total=total)
