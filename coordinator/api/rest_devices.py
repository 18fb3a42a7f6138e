"""REST: a device's deployment records, /v2/clients/{client_id}/devices/{device_id}/records.

(`…/devices/{device_id}/deployments` is seed 000's enrollment history, so the per-device view of
seed 004's records needs a name of its own.)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from coordinator.api.base import Api
from coordinator.api.rest_history import int_param
from coordinator.auth import bearer
from coordinator.service import device_records

router = APIRouter(tags=["devices"])

_QUERY = {"parameters": [
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 500,
                                                                    "default": 50}, "description": "Page size"},
    {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0, "default": 0},
     "description": "Records to skip"},
]}


@router.get("/clients/{client_id}/devices/{device_id}/records", summary="List a device's deployment records",
            openapi_extra=_QUERY)
async def list_device_records(client_id: str, device_id: str, request: Request) -> dict[str, Any]:
    """Every deployment record of the device, newest deployment first, with the deployment's name
    and status: the same record as `/v2/deployments/{id}/devices`."""
    return await Api(request.app.state.convoy).read(
        bearer(request.headers.get("authorization")), device_records.list_for_device, client_id, device_id,
        int_param(request, "limit", 50), int_param(request, "offset", 0))
