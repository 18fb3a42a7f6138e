"""REST: a client's signer keys and its signed trust-set document (docs/security.md, "Signed work")."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from coordinator.api.base import Api
from coordinator.api.rest_deployments import _body
from coordinator.api.rest_io import request_body
from coordinator.api.rest_models import (
    RegisterSignerBody,
    Signer,
    SignerList,
    TrustSet,
    TrustSetBody,
)
from coordinator.auth import bearer
from coordinator.service import signers

router = APIRouter(tags=["signers"])


@router.post("/clients/{client_id}/signers", status_code=201, summary="Register a signer's public key (admin role)",
             response_model=Signer, openapi_extra=request_body(RegisterSignerBody))
async def register_signer(request: Request, client_id: str) -> dict[str, Any]:
    """Body: `{"publicKey": "ed25519:<base64>", "name": "…"}`. The private key never leaves the
    operator's machine (`convoy keys create`)."""
    api = Api(request.app.state.convoy)
    token = bearer(request.headers.get("authorization"))
    return await api.call(token, signers.register, client_id, await _body(request), api.app.clock.now())


@router.get("/clients/{client_id}/signers", summary="List the client's signer keys", response_model=SignerList)
async def list_signers(request: Request, client_id: str) -> dict[str, Any]:
    rows = await Api(request.app.state.convoy).read(bearer(request.headers.get("authorization")),
                                                    signers.list_signers, client_id)
    return {"data": rows, "total": len(rows)}


@router.delete("/clients/{client_id}/signers/{key_id}", summary="Revoke a signer key (admin role)", response_model=Signer)
async def revoke_signer(request: Request, client_id: str, key_id: str) -> dict[str, Any]:
    api = Api(request.app.state.convoy)
    return await api.call(bearer(request.headers.get("authorization")), signers.revoke, client_id, key_id,
                          api.app.clock.now())


@router.put("/clients/{client_id}/trust-set", summary="Publish a signed trust-set document (admin role)",
            response_model=TrustSet, openapi_extra=request_body(TrustSetBody))
async def publish_trust_set(request: Request, client_id: str) -> dict[str, Any]:
    """Body: `{"document", "keyId", "signature"}` as `convoy keys rotate` makes it."""
    api = Api(request.app.state.convoy)
    token = bearer(request.headers.get("authorization"))
    return await api.call(token, signers.publish_trust_set, client_id, await _body(request), api.app.clock.now())


@router.get("/clients/{client_id}/trust-set", summary="The client's published trust-set document", response_model=TrustSet)
async def get_trust_set(request: Request, client_id: str) -> dict[str, Any]:
    return await Api(request.app.state.convoy).read(bearer(request.headers.get("authorization")),
                                                    signers.get_trust_set, client_id)
