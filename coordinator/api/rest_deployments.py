"""REST: /v2/deployments… exactly as seed 004's API reference lists it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from common.errors import InvalidArgument
from coordinator.api.deployment_actions import DeploymentActions
from coordinator.api.rest_io import json_object as _body
from coordinator.api.rest_io import request_body
from coordinator.api.rest_models_work import (
    ApproveBody,
    AuditList,
    DeletedDeployment,
    Deployment,
    DeploymentList,
    DeploymentRecord,
    DeploymentRecordList,
    DeploymentSpecBody,
    DeploymentUpdateBody,
    Initialized,
    Manifest,
    SignatureBody,
)
from coordinator.auth import bearer
from coordinator.service import audit
from coordinator.service.approvals import approve_body

router = APIRouter(tags=["deployments"])


def _actions(request: Request) -> DeploymentActions:
    return DeploymentActions(request.app.state.convoy)


def _token(request: Request) -> str:
    return bearer(request.headers.get("authorization"))


def _int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer", parameter=name, value=value) from None


@router.get("/deployments", summary="List deployments", response_model=DeploymentList)
async def list_deployments(request: Request, status: str | None = None, type: str | None = None,  # noqa: A002
                           limit: str | None = None, offset: str | None = None,
                           clientId: str | None = None) -> dict[str, Any]:  # noqa: N803
    lim, off = _int(limit, "limit"), _int(offset, "offset")
    rows, total = await _actions(request).list_all(_token(request), status=status or None, type_=type or None,
                                               limit=lim, offset=off, client_id=clientId)
    return {"data": rows, "total": total, "limit": lim or 50, "offset": off or 0}


@router.post("/deployments", status_code=201, summary="Create a deployment in draft status",
             response_model=Deployment, openapi_extra=request_body(DeploymentSpecBody))
async def create_deployment(request: Request) -> dict[str, Any]:
    token = _token(request)
    return await _actions(request).create(token, await _body(request))


@router.get("/deployments/{dep_id}", summary="Get a deployment with real-time progress", response_model=Deployment)
async def get_deployment(request: Request, dep_id: str) -> dict[str, Any]:
    return await _actions(request).get(_token(request), dep_id)


@router.put("/deployments/{dep_id}", summary="Update a deployment (draft only)", response_model=Deployment,
            openapi_extra=request_body(DeploymentUpdateBody))
async def update_deployment(request: Request, dep_id: str) -> dict[str, Any]:
    token = _token(request)
    return await _actions(request).update(token, dep_id, await _body(request))


@router.delete("/deployments/{dep_id}", summary="Delete a deployment (draft only)", response_model=DeletedDeployment)
async def delete_deployment(request: Request, dep_id: str) -> dict[str, Any]:
    out = await _actions(request).delete(_token(request), dep_id)
    return {**out, "deleted": True}


@router.post("/deployments/{dep_id}/initialize", summary="Resolve targets, plan batches: draft → pending",
             response_model=Initialized, response_model_exclude_unset=True)
async def initialize_deployment(request: Request, dep_id: str) -> dict[str, Any]:
    dep, preview = await _actions(request).initialize(_token(request), dep_id)
    return {"deployment": dep, "preview": preview}


async def _signature(request: Request) -> Any:
    """The optional body `{"signature": {"keyId", "value", "manifest"}}` of start and rollback."""
    raw = await request.body()
    if not raw.strip():
        return None
    body = await _body(request)
    unknown = sorted(set(body) - {"signature"})
    if unknown:
        raise InvalidArgument(f"unknown field {unknown[0]!r}: the body is {{\"signature\": {{…}}}}",
                              parameter=unknown[0])
    return body.get("signature")


@router.post("/deployments/{dep_id}/start", summary="Begin execution: pending → downloading",
             response_model=Deployment, openapi_extra=request_body(SignatureBody, required=False))
async def start_deployment(request: Request, dep_id: str) -> dict[str, Any]:
    """Optional body `{"signature": {"keyId", "value", "manifest"}}`: an operator's signature
    over the manifest from `GET …/manifest` (docs/security.md, "Signed work")."""
    signature = await _signature(request)
    return await _actions(request).action(_token(request), "start", dep_id, signature=signature)


@router.get("/deployments/{dep_id}/manifest", summary="The unsigned manifest of a pending deployment, to sign",
            response_model=Manifest)
async def deployment_manifest(request: Request, dep_id: str, rollback: str | None = None) -> dict[str, Any]:
    """`{"manifest": "<canonical JSON>", "payload": {…}}`: `payload` is what agents would receive,
    `manifest.digest` its SHA-256. `?rollback=true`: the manifest of this deployment's rollback."""
    if rollback not in (None, "true", "false"):
        raise InvalidArgument("rollback must be true or false", parameter="rollback")
    return await _actions(request).manifest(_token(request), dep_id, rollback == "true")


@router.post("/deployments/{dep_id}/approve", summary="Approve a pending deployment (another operator's sign-off)",
             response_model=Deployment, openapi_extra=request_body(ApproveBody, required=False))
async def approve_deployment(request: Request, dep_id: str) -> dict[str, Any]:
    """Needed before `start` when the deployment is above its client's approval policy; the
    token that created the deployment cannot approve it (docs/approvals.md). Body: optional
    `{"comment": "..."}`."""
    raw = await request.body()
    comment = approve_body(await _body(request)) if raw.strip() else None
    return await _actions(request).approve(_token(request), dep_id, comment)


@router.get("/deployments/{dep_id}/audit", summary="The deployment's audit trail, oldest first",
            response_model=AuditList)
async def deployment_audit(request: Request, dep_id: str, limit: str | None = None,
                           offset: str | None = None) -> dict[str, Any]:
    """Every transition and approval: `{at, actor, actorName, fromStatus, toStatus, reason}`."""
    lim, off = _int(limit, "limit"), _int(offset, "offset")
    rows, total = await _actions(request).read(_token(request), audit.list_events, dep_id, limit=lim, offset=off)
    return {"data": rows, "total": total, "limit": lim or 100, "offset": off or 0}


@router.post("/deployments/{dep_id}/pause", summary="Pause (downloading, installing or running)",
             response_model=Deployment)
async def pause_deployment(request: Request, dep_id: str) -> dict[str, Any]:
    return await _actions(request).action(_token(request), "pause", dep_id)


@router.post("/deployments/{dep_id}/resume", summary="Resume a paused deployment", response_model=Deployment)
async def resume_deployment(request: Request, dep_id: str) -> dict[str, Any]:
    return await _actions(request).action(_token(request), "resume", dep_id)


@router.post("/deployments/{dep_id}/cancel", summary="Cancel: pending devices skipped, deployment terminated",
             response_model=Deployment)
async def cancel_deployment(request: Request, dep_id: str) -> dict[str, Any]:
    return await _actions(request).cancel(_token(request), dep_id)


@router.post("/deployments/{dep_id}/rollback", status_code=201, response_model=Deployment,
             summary="Create and start a deployment that reverts this one where it completed",
             openapi_extra=request_body(SignatureBody, required=False))
async def rollback_deployment(request: Request, dep_id: str) -> dict[str, Any]:
    """Optional body `{"signature": {…}}` over `GET …/manifest?rollback=true`."""
    signature = await _signature(request)
    return await _actions(request).rollback(_token(request), dep_id, signature=signature)


@router.get("/deployments/{dep_id}/devices", summary="List per-device records", response_model=DeploymentRecordList)
async def list_deployment_devices(request: Request, dep_id: str, status: str | None = None,
                                  batchNumber: str | None = None, limit: str | None = None,  # noqa: N803
                                  offset: str | None = None) -> dict[str, Any]:
    lim, off = _int(limit, "limit"), _int(offset, "offset")
    rows, total = await _actions(request).devices(_token(request), dep_id, status=status or None,
                                                  batch_number=_int(batchNumber, "batchNumber"), limit=lim, offset=off)
    return {"data": rows, "total": total, "limit": lim or 50, "offset": off or 0}


@router.post("/deployments/{dep_id}/devices/{device_id}/retry", summary="Retry a failed or skipped device",
             response_model=DeploymentRecord)
async def retry_deployment_device(request: Request, dep_id: str, device_id: str) -> dict[str, Any]:
    return await _actions(request).retry(_token(request), dep_id, device_id)

