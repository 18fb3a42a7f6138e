"""REST: the clients a token can see, and who the token is (what the dashboard signs in with)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from coordinator.api.base import Api
from coordinator.auth import Principal, bearer
from coordinator.service import tenancy

router = APIRouter(tags=["clients"])


def _me(s: Session, who: Principal) -> dict[str, Any]:
    return {"tokenId": who.token_id, "role": who.role, "partner": who.partner,
            "clients": tenancy.list_clients(s, who)}


@router.get("/clients", summary="List the clients this token can see")
async def list_clients(request: Request) -> dict[str, Any]:
    rows = await Api(request.app.state.convoy).read(bearer(request.headers.get("authorization")),
                                                    tenancy.list_clients)
    return {"data": rows, "total": len(rows)}


@router.get("/me", summary="The calling token: its role and the clients it can see")
async def me(request: Request) -> dict[str, Any]:
    return await Api(request.app.state.convoy).read(bearer(request.headers.get("authorization")), _me)
