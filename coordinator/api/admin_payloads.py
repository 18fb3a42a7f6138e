"""AdminService: groups, scripts and artifacts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc.aio
from sqlalchemy.orm import Session

from common.convoy.v1 import admin_pb2 as pb
from common.errors import InvalidArgument
from coordinator.api.base import Api
from coordinator.api.grpc_util import metadata_bearer, unary
from coordinator.auth import Principal
from coordinator.service import payloads


def _principal(_s: Session, who: Principal) -> Principal:
    return who


async def _next_message(messages: AsyncIterator[pb.UploadArtifactChunk]) -> pb.UploadArtifactChunk | None:
    try:
        return await anext(messages)
    except StopAsyncIteration:
        return None


def _pull_chunks(loop: asyncio.AbstractEventLoop, first: bytes,
                 messages: AsyncIterator[pb.UploadArtifactChunk]) -> Iterator[bytes]:
    """A blocking iterator, for a worker thread, over the chunks still arriving on the loop.

    Each `next()` asks the loop for one more message, so the client is read only as fast as
    the store writes: nothing beyond the current message and one MiB of buffer is in memory.
    """
    yield first
    while True:
        message = asyncio.run_coroutine_threadsafe(_next_message(messages), loop).result()
        if message is None:
            return
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
        who = await self.read(metadata_bearer(context), _principal)
        first = await _next_message(request_iterator)
        if first is None:
            raise InvalidArgument("the upload is empty: the first message carries client_id and name",
                                  parameter="data")
        if not first.name.strip():
            raise InvalidArgument("name is required in the first message", parameter="name")
        chunks = _pull_chunks(asyncio.get_running_loop(), first.data, request_iterator)
        out: dict[str, Any] = await self.app.run(payloads.store_artifact, self.app.store, who, first.client_id,
                                                 first.name, chunks, self.app.clock.now(),
                                                 replica=self.app.replica_id)
        return pb.Artifact(**out)

    @unary
    async def ListArtifacts(self, request: pb.ListArtifactsRequest, context: grpc.aio.ServicerContext) -> pb.ListArtifactsResponse:
        rows = await self.read(metadata_bearer(context), payloads.list_artifacts, request.client_id)
        return pb.ListArtifactsResponse(data=[pb.Artifact(**r) for r in rows])
