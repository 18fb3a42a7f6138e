"""REST: the clients a token can see, who the token is (what the dashboard signs in with), new
clients (partner admin, as `convoy clients create`), and a client's approval policy
(docs/approvals.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from coordinator.api.base import Api
from coordinator.api.rest_deployments import _body
from coordinator.api.rest_io import body, request_body
from coordinator.api.rest_models import (
    Client,
    ClientList,
    ClientPolicy,
    ClientPolicyBody,
    CreateClientBody,
    Me,
)
from coordinator.auth import Principal, bearer
from coordinator.service import approvals, tenancy

router = APIRouter(tags=["clients"])


def _me(s: Session, who: Principal) -> dict[str, Any]:
    return {"tokenId": who.token_id, "role": who.role, "partner": who.partner,
            "clients": tenancy.list_clients(s, who)}


@router.get("/clients", summary="List the clients this token can see", response_model=ClientList)
async def list_clients(request: Request) -> dict[str, Any]:
    rows = await Api(request.app.state.convoy).read(bearer(request.headers.get("authorization")),
                                                    tenancy.list_clients)
    return {"data": rows, "total": len(rows)}


@router.post("/clients", status_code=201, summary="Create a client (partner admin)", response_model=Client,
             openapi_extra=request_body(CreateClientBody))
async def create_client(request: Request) -> dict[str, Any]:
    """Body: `{"name": "…"}`; only a partner-level token creates clients."""
    api = Api(request.app.state.convoy)
    token = bearer(request.headers.get("authorization"))
    new = await body(request, CreateClientBody)
    return await api.call(token, tenancy.create_client, new.name, api.app.clock.now())


@router.get("/me", summary="The calling token: its role and the clients it can see", response_model=Me)
async def me(request: Request) -> dict[str, Any]:
    return await Api(request.app.state.convoy).read(bearer(request.headers.get("authorization")), _me)


@router.get("/clients/{client_id}/policy", summary="The client's approval policy (admin role)",
            response_model=ClientPolicy)
async def get_policy(request: Request, client_id: str) -> dict[str, Any]:
    return await Api(request.app.state.convoy).read(bearer(request.headers.get("authorization")),
                                                    approvals.get_policy, client_id)


@router.put("/clients/{client_id}/policy", summary="Replace the client's approval policy (admin role)",
            response_model=ClientPolicy, openapi_extra=request_body(ClientPolicyBody))
async def set_policy(request: Request, client_id: str) -> dict[str, Any]:
    """Body: `{"requireApprovalOver": N | null, "requireApprovalForAll": bool}`; a field left out
    means no such rule, so `{}` clears the policy."""
    api = Api(request.app.state.convoy)
    token = bearer(request.headers.get("authorization"))
    return await api.call(token, approvals.set_policy, client_id, await _body(request), api.app.clock.now())
