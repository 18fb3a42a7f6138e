"""REST: a client's enrollment tokens (create, list, revoke), the twins of `convoy tokens …`.
The same service functions as gRPC; only a token's hash is stored, its secret is shown once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from coordinator.api.rest_io import api, body, request_body, token
from coordinator.api.rest_models import (
    CreatedSecret,
    CreateEnrollmentTokenBody,
    EnrollmentToken,
    EnrollmentTokenList,
)
from coordinator.service import enrollment

router = APIRouter(tags=["enrollment tokens"])


@router.post("/clients/{client_id}/enrollment-tokens", status_code=201, response_model=CreatedSecret,
             summary="Create Enrollment Token (admin role)", openapi_extra=request_body(CreateEnrollmentTokenBody))
async def create_enrollment_token(client_id: str, request: Request) -> dict[str, Any]:
    """`{"id", "token"}`: what `convoy agent install --token` takes. `expiresInSeconds` and
    `maxUses` 0 (the defaults) mean no limit; `groupIds` are joined by each device it enrolls."""
    caller = token(request)
    new = await body(request, CreateEnrollmentTokenBody)
    door = api(request)
    return await door.call(caller, enrollment.create_token, client_id, new.expiresInSeconds, new.maxUses,
                           new.groupIds, new.name, door.app.clock.now())


@router.get("/clients/{client_id}/enrollment-tokens", response_model=EnrollmentTokenList,
            summary="List Enrollment Tokens (admin role)")
async def list_enrollment_tokens(client_id: str, request: Request) -> dict[str, Any]:
    """The client's enrollment tokens, oldest first, with their uses; never their secrets."""
    rows = await api(request).read(token(request), enrollment.list_tokens, client_id)
    return {"data": rows, "total": len(rows)}


@router.post("/clients/{client_id}/enrollment-tokens/{token_id}/revoke", response_model=EnrollmentToken,
             summary="Revoke Enrollment Token (admin role)")
async def revoke_enrollment_token(client_id: str, token_id: str, request: Request) -> dict[str, Any]:
    """Idempotent. Devices already enrolled with it keep their credentials."""
    door = api(request)
    return await door.call(token(request), enrollment.revoke_token, client_id, token_id, door.app.clock.now())
