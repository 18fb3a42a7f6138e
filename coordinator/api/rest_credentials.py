"""REST: API tokens (create, list, revoke) and device replacement tokens, the twins of `convoy
api-tokens create|list|revoke` and `convoy devices replace`. The same service functions as gRPC."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from coordinator.api.base import Api
from coordinator.api.device_actions import revoke
from coordinator.api.rest_io import body, request_body
from coordinator.api.rest_models import (
    ApiToken,
    ApiTokenList,
    CreateApiTokenBody,
    CreatedSecret,
    ReplacementToken,
)
from coordinator.auth import bearer
from coordinator.service import enrollment, tenancy

router = APIRouter(tags=["credentials"])


def _api(request: Request) -> Api:
    return Api(request.app.state.convoy)


def _token(request: Request) -> str:
    return bearer(request.headers.get("authorization"))


@router.post("/api-tokens", status_code=201, summary="Create API Token (admin role)", response_model=CreatedSecret,
             openapi_extra=request_body(CreateApiTokenBody))
async def create_api_token(request: Request) -> dict[str, Any]:
    """`{"id", "token"}`: the secret is shown once. The caller must administer every client."""
    api, token = _api(request), _token(request)
    new = await body(request, CreateApiTokenBody)
    return await api.call(token, tenancy.create_api_token, new.clientIds, new.role, new.name, api.app.clock.now(),
                          expires_in_s=new.expiresInSeconds)


@router.get("/api-tokens", summary="List API Tokens", response_model=ApiTokenList, openapi_extra={"parameters": [
    {"name": "clientId", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Only tokens serving this client"}]})
async def list_api_tokens(request: Request) -> dict[str, Any]:
    """The API tokens the caller administers (admin role), never their secrets."""
    rows = await _api(request).read(_token(request), tenancy.list_api_tokens,
                                    request.query_params.get("clientId") or "")
    return {"data": rows, "total": len(rows)}


@router.post("/api-tokens/{token_id}/revoke", summary="Revoke API Token", response_model=ApiToken)
async def revoke_api_token(token_id: str, request: Request) -> dict[str, Any]:
    """Revoke an API token (idempotent); it is refused from its next call on."""
    api = _api(request)
    return await api.call(_token(request), tenancy.revoke_api_token, token_id, api.app.clock.now())


@router.post("/clients/{client_id}/devices/{device_id}/replace", summary="Replace Device", status_code=201,
             response_model=ReplacementToken)
async def replace_device(client_id: str, device_id: str, request: Request) -> dict[str, Any]:
    """A single-use enrollment token, valid 24 h, that re-enrolls exactly this device (admin role)."""
    api = _api(request)
    out = await api.call(_token(request), enrollment.create_token, client_id, 86400.0, 1, [],
                         f"replace {device_id}", api.app.clock.now(), device_id=device_id)
    return {**out, "device_id": device_id}


@router.post("/clients/{client_id}/devices/{device_id}/revoke", summary="Revoke Device")
async def revoke_device(client_id: str, device_id: str, request: Request) -> dict[str, Any]:
    """Revoke a device (operator role; idempotent): its credential is refused from now on, its
    stream is closed within a second on whichever replica holds it, and its unfinished deployment
    records end so no rollout waits for it."""
    return await revoke(_api(request), _token(request), client_id, device_id)
