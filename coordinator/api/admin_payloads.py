"""AdminService: groups, scripts and artifacts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc.aio

from common.convoy.v1 import admin_pb2 as pb
from common.errors import InvalidArgument
from coordinator.api.base import Api
from coordinator.api.grpc_util import metadata_bearer, unary
from coordinator.api.upload_stream import blocking_pieces, principal, slots
from coordinator.service import payloads


async def _next_message(messages: AsyncIterator[pb.UploadArtifactChunk]) -> pb.UploadArtifactChunk | None:
    try:
        return await anext(messages)
    except StopAsyncIteration:
        return None


async def _data(first: bytes, messages: AsyncIterator[pb.UploadArtifactChunk]) -> AsyncIterator[bytes]:
    yield first
    async for message in messages:
        yield message.data


class PayloadRpcs(Api):
    @unary
    async def CreateGroup(self, request: pb.CreateGroupRequest, context: grpc.aio.ServicerContext) -> pb.Group:
        out = await self.call(metadata_bearer(context), payloads.create_group, request.client_id, request.name,
                              self.app.clock.now())
        return pb.Group(**out)

    @unary
    async def ListGroups(self, request: pb.ListGroupsRequest, context: grpc.aio.ServicerContext) -> pb.ListGroupsResponse:
        rows = await self.read(metadata_bearer(context), payloads.list_groups, request.client_id)
        return pb.ListGroupsResponse(data=[pb.Group(**r) for r in rows])

    @unary
    async def AddGroupMembers(self, request: pb.GroupMembersRequest, context: grpc.aio.ServicerContext) -> pb.Group:
        out = await self.call(metadata_bearer(context), payloads.add_group_members, request.group_id,
                              list(request.device_ids), request.client_id)
        return pb.Group(**out)

    @unary
    async def RemoveGroupMembers(self, request: pb.GroupMembersRequest, context: grpc.aio.ServicerContext) -> pb.Group:
        out = await self.call(metadata_bearer(context), payloads.remove_group_members, request.group_id,
                              list(request.device_ids), request.client_id)
        return pb.Group(**out)

    @unary
    async def CreateScript(self, request: pb.CreateScriptRequest, context: grpc.aio.ServicerContext) -> pb.Script:
        out = await self.call(metadata_bearer(context), payloads.create_script, request.client_id, request.name,
                              request.interpreter, request.body, request.parameters_schema,
                              request.rollback_body, self.app.clock.now())
        return pb.Script(**out)

    @unary
    async def ListScripts(self, request: pb.ListScriptsRequest, context: grpc.aio.ServicerContext) -> pb.ListScriptsResponse:
        rows = await self.read(metadata_bearer(context), payloads.list_scripts, request.client_id)
        return pb.ListScriptsResponse(data=[pb.Script(**r) for r in rows])

    @unary
    async def UploadArtifact(self, request_iterator: AsyncIterator[pb.UploadArtifactChunk],
                             context: grpc.aio.ServicerContext) -> pb.Artifact:
        # Authenticate before reading a byte of the upload.
        who = await self.read(metadata_bearer(context), principal)
        first = await _next_message(request_iterator)
        if first is None:
            raise InvalidArgument("the upload is empty: the first message carries client_id and name",
                                  parameter="data")
        if not first.name.strip():
            raise InvalidArgument("name is required in the first message", parameter="name")
        chunks = blocking_pieces(asyncio.get_running_loop(), _data(first.data, request_iterator))
        uploads = slots(self.app)
        with uploads.slot(who):
            out: dict[str, Any] = await uploads.run(payloads.store_artifact, self.app.store, who, first.client_id,
                                                    first.name, chunks, self.app.clock.now(),
                                                    replica=self.app.replica_id)
        return pb.Artifact(**out)

    @unary
    async def ListArtifacts(self, request: pb.ListArtifactsRequest, context: grpc.aio.ServicerContext) -> pb.ListArtifactsResponse:
        rows = await self.read(metadata_bearer(context), payloads.list_artifacts, request.client_id)
        return pb.ListArtifactsResponse(data=[pb.Artifact(**r) for r in rows])
