"""REST: a client's webhooks, `/v2/clients/{client_id}/webhooks[/{webhook_id}][/deliveries]`
(docs/webhooks.md). The same service functions as gRPC; typed bodies for the OpenAPI document."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from coordinator.api.base import Api
from coordinator.auth import bearer
from coordinator.domain.webhooks import EVENTS
from coordinator.service import webhooks

router = APIRouter(tags=["webhooks"])


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="The receiver: http:// or https://")
    events: list[str] = Field(default_factory=list,
                              description=f"Event types to receive ({', '.join(EVENTS)}); empty: every event")


class Webhook(BaseModel):
    id: str
    clientId: str
    url: str
    events: list[str] = Field(description="Empty: every event")
    createdAt: str
    createdBy: str | None


class CreatedWebhook(Webhook):
    secret: str = Field(description="The signing secret (HMAC-SHA256 key): shown in this answer only")


class WebhookList(BaseModel):
    data: list[Webhook]
    total: int


class WebhookDelivery(BaseModel):
    id: str
    webhookId: str
    eventId: str
    eventType: str
    deploymentId: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    nextAttemptAt: str | None
    lastStatusCode: int | None
    lastError: str | None
    createdAt: str
    deliveredAt: str | None


class WebhookDeliveryList(BaseModel):
    data: list[WebhookDelivery]
    total: int


def _token(request: Request) -> str:
    """A dependency, so a request without a valid bearer is 401 before its body is looked at."""
    return bearer(request.headers.get("authorization"))


Token = Depends(_token)


@router.post("/clients/{client_id}/webhooks", status_code=201, response_model=CreatedWebhook,
             summary="Create a webhook (admin role); the answer carries its secret, shown once")
async def create_webhook(request: Request, client_id: str, body: WebhookCreate, token: str = Token) -> CreatedWebhook:
    api = Api(request.app.state.convoy)
    out = await api.call(token, webhooks.create, client_id, body.url, body.events, api.app.clock.now(),
                         api.app.webhook_keys, api.app.settings.webhooks_allow_link_local)
    return CreatedWebhook(**out)


@router.get("/clients/{client_id}/webhooks", response_model=WebhookList,
            summary="List the client's webhooks (operator role; never their secrets)")
async def list_webhooks(request: Request, client_id: str, token: str = Token) -> WebhookList:
    rows = await Api(request.app.state.convoy).read(token, webhooks.list_webhooks, client_id)
    return WebhookList(data=[Webhook(**r) for r in rows], total=len(rows))


@router.delete("/clients/{client_id}/webhooks/{webhook_id}", response_model=Webhook,
               summary="Delete a webhook and its deliveries (admin role)")
async def delete_webhook(request: Request, client_id: str, webhook_id: str, token: str = Token) -> Webhook:
    out = await Api(request.app.state.convoy).call(token, webhooks.delete, client_id, webhook_id)
    return Webhook(**out)


@router.get("/clients/{client_id}/webhooks/{webhook_id}/deliveries", response_model=WebhookDeliveryList,
            summary="A webhook's deliveries, newest first (operator role)")
async def list_deliveries(request: Request, client_id: str, webhook_id: str,
                          status: Literal["pending", "delivered", "dead"] | None = None,
                          limit: int | None = Query(None, ge=1, le=500), token: str = Token) -> WebhookDeliveryList:
    rows, total = await Api(request.app.state.convoy).read(token, webhooks.list_deliveries, client_id,
                                                           webhook_id, status, limit)
    return WebhookDeliveryList(data=[WebhookDelivery(**r) for r in rows], total=total)
