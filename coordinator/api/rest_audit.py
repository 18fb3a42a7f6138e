"""REST: the global audit log, GET /v2/audit (the twin of `convoy audit` and ListAuditLog)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from coordinator.api.base import Api
from coordinator.api.rest_history import int_param
from coordinator.auth import bearer
from coordinator.service import audit_log

router = APIRouter(tags=["audit"])

_QUERY = {"parameters": [
    {"name": "clientId", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Only this client's entries (default: every client the token sees)"},
    {"name": "action", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Only this action (`device.revoke`) or family of actions (`device`)"},
    {"name": "since", "in": "query", "required": False, "schema": {"type": "string", "format": "date-time"},
     "description": "Only entries at or after this time (RFC 3339)"},
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": audit_log.LIMIT_MAX, "default": 50}},
    {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0, "default": 0}},
]}


@router.get("/audit", summary="The audit log of admin writes, newest first", openapi_extra=_QUERY)
async def list_audit(request: Request) -> dict[str, Any]:
    """Every admin write (and every refused one) on the clients the token sees:
    `{id, at, actor, actorName, action, clientId, targetId, replica, outcome, summary}`."""
    q = request.query_params
    limit, offset = int_param(request, "limit", 50), int_param(request, "offset", 0)
    rows, total = await Api(request.app.state.convoy).read(
        bearer(request.headers.get("authorization")), audit_log.list_entries, client_id=q.get("clientId") or "",
        action_name=q.get("action") or "", since=q.get("since") or "", limit=limit, offset=offset)
    return {"data": rows, "total": total, "limit": limit, "offset": offset}
