"""REST: devices and their enrollment history, /v2/clients/{client_id}/devices/…

Query parameters are read from the request and validated by the service functions (the same
ones gRPC calls), so a bad value is the seed's 400 body naming the parameter, never a 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from common.errors import InvalidArgument
from coordinator.api.base import Api
from coordinator.api.rest_models import Device, DeviceDeployment, DeviceDeploymentList, DeviceList
from coordinator.auth import bearer
from coordinator.service import devices, history

router = APIRouter(tags=["devices"])

_LIST_PARAMS = ("status", "sort_by", "sort_order", "page_size", "cursor")


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


# Declared for the OpenAPI document only: the values are validated by the service functions.
_HISTORY_QUERY = {"parameters": [
    _query("status", {"type": "string", "enum": ["success", "error", "pending"]}, "Filter by deployment status"),
    _query("sort_by", {"type": "string", "enum": ["enrollment_date", "status", "created_at"],
                       "default": "enrollment_date"}, "Sort field"),
    _query("sort_order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}, "Sort direction"),
    _query("page_size", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Items per page"),
    _query("cursor", {"type": "string"}, "Pagination cursor from a previous response"),
]}
_DEVICES_QUERY = {"parameters": [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "Page size"),
    _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "Devices to skip"),
    _query("filter", {"type": "string"}, "A target filter expression, e.g. os == \"linux\""),
]}


def _api(request: Request) -> Api:
    return Api(request.app.state.convoy)


def _token(request: Request) -> str:
    return bearer(request.headers.get("authorization"))


def int_param(request: Request, name: str, default: int) -> int:
    """An integer query parameter (its default when absent); 400 naming it when it is not one."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer", parameter=name, value=raw) from None


@router.get("/clients/{client_id}/devices/{device_id}/deployments", summary="List Deployments",
            openapi_extra=_HISTORY_QUERY, response_model=DeviceDeploymentList)
async def list_device_deployments(client_id: str, device_id: str, request: Request) -> dict[str, Any]:
    """Paginated enrollment deployment history for a device, newest first by default.

    Query: status (success|error|pending), sort_by (enrollment_date|status|created_at),
    sort_order (asc|desc), page_size (1..500, default 50), cursor.
    """
    q = request.query_params
    params = {name: q.get(name) for name in _LIST_PARAMS}
    return await _api(request).read(_token(request), history.list_deployments, client_id, device_id, **params)


@router.get("/clients/{client_id}/devices/{device_id}/deployments/{deployment_id}", summary="Get Deployment",
            response_model=DeviceDeployment)
async def get_device_deployment(client_id: str, device_id: str, deployment_id: str, request: Request) -> dict[str, Any]:
    """The full DeviceDeployment record; `error_logs` is null unless it failed."""
    return await _api(request).read(_token(request), history.get_deployment, client_id, device_id, deployment_id)


@router.get("/clients/{client_id}/devices", summary="List Devices", openapi_extra=_DEVICES_QUERY,
            response_model=DeviceList)
async def list_devices(client_id: str, request: Request) -> dict[str, Any]:
    """A page of the client's devices (`limit` default 100, max 1000; `offset`; `filter`, a target
    filter expression such as `os == "linux" and "canary" in tags`) and `total`."""
    limit = int_param(request, "limit", 0)
    offset = int_param(request, "offset", 0)
    return await _api(request).read(_token(request), devices.list_devices, client_id, limit, offset,
                                    request.query_params.get("filter") or "")


@router.get("/clients/{client_id}/devices/{device_id}", summary="Get Device", response_model=Device)
async def get_device(client_id: str, device_id: str, request: Request) -> dict[str, Any]:
    """The device, with `latest_enrollment` ({id, status, enrollment_date} or null)."""
    return await _api(request).read(_token(request), devices.get_device, client_id, device_id)
