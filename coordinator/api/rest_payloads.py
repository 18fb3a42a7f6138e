"""REST: groups, scripts and artifacts, the twins of `convoy groups|scripts|artifacts …`.

Ids are global, so one is read at `/v2/<kind>/{id}` (404 unless it is in a client the token can
see). Lists take `?clientId=` and without it cover every client the token can see; creating
takes `clientId` in the body, needed only when the token serves several clients.

An artifact is uploaded as the raw request body (`POST /v2/artifacts?name=…`, any content type),
streamed into the store a MiB at a time as it arrives, never held whole in memory (the same
`payloads.store_artifact` as gRPC's `UploadArtifact`, and its size limit).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect

from common.errors import InvalidArgument
from coordinator.api.rest_io import api, body, request_body, token
from coordinator.api.rest_models_work import (
    Artifact,
    ArtifactList,
    CreateGroupBody,
    CreateScriptBody,
    Group,
    GroupList,
    GroupMembersBody,
    Script,
    ScriptList,
)
from coordinator.api.upload_stream import blocking_pieces, principal, slots
from coordinator.service import payloads

router = APIRouter(tags=["payloads"])

_CLIENT_QUERY = {"parameters": [
    {"name": "clientId", "in": "query", "required": False, "schema": {"type": "string", "format": "uuid"},
     "description": "Only this client's (default: every client the token can see)"}]}


async def _listed(request: Request, lister: Any) -> dict[str, Any]:
    """A client-scoped list as `{"data": [...], "total": N}`; `?clientId=` narrows it."""
    rows = await api(request).read(token(request), lister, request.query_params.get("clientId") or "")
    return {"data": rows, "total": len(rows)}


# --- groups -----------------------------------------------------------------------------------

@router.post("/groups", status_code=201, response_model=Group, summary="Create Group (operator role)",
             openapi_extra=request_body(CreateGroupBody))
async def create_group(request: Request) -> dict[str, Any]:
    """A device group (a deployment target); the name is unique within the client (409)."""
    caller = token(request)
    new = await body(request, CreateGroupBody)
    door = api(request)
    return await door.call(caller, payloads.create_group, new.clientId or "", new.name, door.app.clock.now())


@router.get("/groups", response_model=GroupList, summary="List Groups", openapi_extra=_CLIENT_QUERY)
async def list_groups(request: Request) -> dict[str, Any]:
    return await _listed(request, payloads.list_groups)


@router.get("/groups/{group_id}", response_model=Group, summary="Get Group")
async def get_group(group_id: str, request: Request) -> dict[str, Any]:
    return await api(request).read(token(request), payloads.show_group, group_id)


async def _members(request: Request, group_id: str, change: Any) -> dict[str, Any]:
    caller = token(request)
    ids = (await body(request, GroupMembersBody)).deviceIds
    return await api(request).call(caller, change, group_id, ids)


@router.post("/groups/{group_id}/members/add", response_model=Group, summary="Add Group Members (operator role)",
             openapi_extra=request_body(GroupMembersBody))
async def add_group_members(group_id: str, request: Request) -> dict[str, Any]:
    """Idempotent: a device already in the group stays in it once. Every device must be in the
    group's client (404 naming the first that is not)."""
    return await _members(request, group_id, payloads.add_group_members)


@router.post("/groups/{group_id}/members/remove", response_model=Group,
             summary="Remove Group Members (operator role)", openapi_extra=request_body(GroupMembersBody))
async def remove_group_members(group_id: str, request: Request) -> dict[str, Any]:
    """Idempotent: removing a device that is not a member changes nothing (it must exist)."""
    return await _members(request, group_id, payloads.remove_group_members)


# --- scripts ----------------------------------------------------------------------------------

@router.post("/scripts", status_code=201, response_model=Script, summary="Create Script (operator role)",
             openapi_extra=request_body(CreateScriptBody))
async def create_script(request: Request) -> dict[str, Any]:
    """A script payload. `parametersSchema` declares the parameters deployments may pass
    (docs/payloads.md); `rollbackBody` is what a rollback runs."""
    caller = token(request)
    new = await body(request, CreateScriptBody)
    schema = json.dumps(new.parametersSchema) if new.parametersSchema is not None else ""
    door = api(request)
    return await door.call(caller, payloads.create_script, new.clientId or "", new.name, new.interpreter, new.body,
                           schema, new.rollbackBody, door.app.clock.now())


@router.get("/scripts", response_model=ScriptList, summary="List Scripts", openapi_extra=_CLIENT_QUERY)
async def list_scripts(request: Request) -> dict[str, Any]:
    return await _listed(request, payloads.list_scripts)


@router.get("/scripts/{script_id}", response_model=Script, summary="Get Script")
async def get_script(script_id: str, request: Request) -> dict[str, Any]:
    return await api(request).read(token(request), payloads.show_script, script_id)


# --- artifacts --------------------------------------------------------------------------------

UPLOAD_PATH = "/v2/artifacts"  # the one route whose body the door streams instead of buffering

_UPLOAD_DOC = {
    "parameters": [
        {"name": "name", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1},
         "description": "The file name agents save it under; .deb, .tar.gz/.tgz set the kind"},
        {"name": "clientId", "in": "query", "required": False, "schema": {"type": "string", "format": "uuid"},
         "description": "Required when the token serves several clients"}],
    "requestBody": {"required": True, "description": "The file's bytes, streamed",
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
}


async def _received(request: Request) -> AsyncIterator[bytes]:
    try:
        async for piece in request.stream():
            if piece:
                yield piece
    except ClientDisconnect:
        raise InvalidArgument("the upload was interrupted before its end", parameter="body") from None


@router.post("/artifacts", status_code=201, response_model=Artifact, summary="Upload Artifact (operator role)",
             openapi_extra=_UPLOAD_DOC)
async def upload_artifact(request: Request) -> dict[str, Any]:
    """The request body is the file, stored content-addressed by its sha256 (the same bytes
    under the same name again return the same artifact). Larger than the coordinator's artifact
    limit (2 GiB): 413 when Content-Length says so, 400 once the stream passes it."""
    door = api(request)
    who = await door.read(token(request), principal)  # before a byte of the body is read
    name = request.query_params.get("name") or ""
    if not name.strip():
        raise InvalidArgument("name is required: POST /v2/artifacts?name=<file name>", parameter="name")
    pieces = blocking_pieces(asyncio.get_running_loop(), _received(request))
    uploads = slots(door.app)
    with uploads.slot(who):
        out: dict[str, Any] = await uploads.run(payloads.store_artifact, door.app.store, who,
                                                request.query_params.get("clientId") or "", name, pieces,
                                                door.app.clock.now(), replica=door.app.replica_id)
    return out


@router.get("/artifacts", response_model=ArtifactList, summary="List Artifacts", openapi_extra=_CLIENT_QUERY)
async def list_artifacts(request: Request) -> dict[str, Any]:
    return await _listed(request, payloads.list_artifacts)


@router.get("/artifacts/{artifact_id}", response_model=Artifact, summary="Get Artifact")
async def get_artifact(artifact_id: str, request: Request) -> dict[str, Any]:
    return await api(request).read(token(request), payloads.show_artifact, artifact_id)
