"""REST: a device's deployment records, /v2/clients/{client_id}/devices/{device_id}/records, and
the operator-set tags and site of a device (`PATCH …/devices/{device_id}`, `convoy devices tag`).

(`…/devices/{device_id}/deployments` is seed 000's enrollment history, so the per-device view of
seed 004's records needs a name of its own.)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from coordinator.api.base import Api
from coordinator.api.rest_history import int_param
from coordinator.api.rest_io import api, body, request_body, token
from coordinator.api.rest_models import Device, UpdateDeviceBody
from coordinator.api.rest_models_work import DeviceRecordList
from coordinator.auth import bearer
from coordinator.service import device_records, devices

router = APIRouter(tags=["devices"])

_QUERY = {"parameters": [
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 500,
                                                                    "default": 50}, "description": "Page size"},
    {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0, "default": 0},
     "description": "Records to skip"},
]}


@router.get("/clients/{client_id}/devices/{device_id}/records", summary="List a device's deployment records",
            openapi_extra=_QUERY, response_model=DeviceRecordList)
async def list_device_records(client_id: str, device_id: str, request: Request) -> dict[str, Any]:
    """Every deployment record of the device, newest deployment first, with the deployment's name
    and status: the same record as `/v2/deployments/{id}/devices`."""
    return await Api(request.app.state.convoy).read(
        bearer(request.headers.get("authorization")), device_records.list_for_device, client_id, device_id,
        int_param(request, "limit", 50), int_param(request, "offset", 0))


@router.patch("/clients/{client_id}/devices/{device_id}", summary="Update Device (tags, site; operator role)",
              response_model=Device, openapi_extra=request_body(UpdateDeviceBody))
async def update_device(client_id: str, device_id: str, request: Request) -> dict[str, Any]:
    """Body `{"tags": [...], "site": "..."}`: each field sent replaces the device's; one left out
    stays. Deployment filters (`"canary" in tags`, `site == "berlin"`) see the change at once."""
    caller = token(request)
    change = await body(request, UpdateDeviceBody)
    door = api(request)
    return await door.call(caller, devices.update_device, client_id, device_id, change.tags, change.site,
                           door.app.clock.now())
