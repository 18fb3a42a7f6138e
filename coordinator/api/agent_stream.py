"""AgentService: the Connect stream and DownloadArtifact (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from sqlalchemy import select

from common.convoy.v1 import agent_pb2
from common.errors import InvalidArgument, NotFound, PermissionDenied
from coordinator.api.base import Api
from coordinator.api.grpc_util import metadata_bearer, presented_certificate, streaming, unary
from coordinator.auth import authenticate_agent
from coordinator.engine.rollout import JOB_TERMINAL, Report
from coordinator.store import models as m

log = logging.getLogger("convoy.agent-stream")


def _report(device_id: str, st: agent_pb2.JobStatus) -> Report:
    from coordinator.domain import device_input  # every field a device sends is bounded first
    st = device_input.job_status(st)
    # Output is arbitrary program text; NUL bytes cannot be stored in PostgreSQL text columns.
    return Report(device_id=device_id, job_id=st.job_id, state=st.state,
                  exit_code=st.exit_code if st.HasField("exit_code") else None,
                  output=st.output.replace("\x00", ""), reason=st.reason.replace("\x00", ""))


class StreamRpcs(Api):
    def _device_id(self, credential: str, presented: str) -> str:
        with self.app.store.read() as s:
            return authenticate_agent(s, credential, presented, not self.app.settings.require_device_certs).id

    def _connect_identity(self, credential: str, presented: str) -> tuple[str, agent_pb2.TrustSetUpdate | None]:
        """The device, and its client's published trust-set document (docs/security.md, "Signed
        work"), in one read: a reconnect storm costs no extra store round trip per agent."""
        with self.app.store.read() as s:
            device = authenticate_agent(s, credential, presented, not self.app.settings.require_device_certs)
            row = s.get(m.TrustSetDocument, device.client_id)
            trust = None if row is None else agent_pb2.TrustSetUpdate(
                document=row.document, key_id=row.key_id, signature=row.signature)
            return device.id, trust

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> str:
        return await self.app.run(self._device_id, metadata_bearer(context), presented_certificate(context))

    @unary
    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        device_id, trust = await self.app.run(self._connect_identity, metadata_bearer(context),
                                              presented_certificate(context))
        first = await context.read()
        if first is grpc.aio.EOF or not first.HasField("hello"):
            raise InvalidArgument("the first message on Connect must be a Hello", parameter="hello")
        hub, engine = self.app.hub, self.app.engine
        conn = hub.register(device_id, first.hello)
        try:
            welcome = agent_pb2.Welcome(device_id=device_id,
                                        heartbeat_interval_seconds=self.app.settings.heartbeat_interval_s)
            if trust is not None:
                welcome.trust_set.CopyFrom(trust)
            await context.write(agent_pb2.CoordinatorMessage(welcome=welcome))
            for st in first.hello.journal:
                engine.submit(_report(device_id, st))
            # The writer is a plain loop over the connection's queue; the reader ends the
            # connection (None in the queue) when the agent's side ends. Before, each outbound
            # message cost a new task and an asyncio.wait over three (a fifth of the
            # coordinator's CPU in a 10,000-agent fan-out profile).
            reader = asyncio.create_task(self._pump(context, conn, device_id))
            reader.add_done_callback(lambda _t: conn.close())
            try:
                while (out := await conn.queue.get()) is not None:
                    await context.write(out)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        finally:
            hub.unregister(conn)

    async def _pump(self, context: grpc.aio.ServicerContext, conn: Any, device_id: str) -> None:
        hub, engine = self.app.hub, self.app.engine
        while True:
            msg = await context.read()
            if msg is grpc.aio.EOF:
                return
            kind = msg.WhichOneof("kind")
            hub.heartbeat(conn)
            if kind == "job_status":
                engine.submit(_report(device_id, msg.job_status))

    def _artifact_chunks(self, device_id: str, sha256: str, offset: int) -> tuple[int, list[tuple[int, int, int]]]:
        """(total size, [(seq, chunk offset, chunk length)]) of the chunks covering `offset`…"""
        from sqlalchemy import func

        with self.app.store.read() as s:
            allowed = s.execute(
                select(m.Deployment.job_payload).join(m.Job, m.Job.deployment_id == m.Deployment.id)
                .where(m.Job.device_id == device_id, m.Job.state.not_in(JOB_TERMINAL),
                       m.Deployment.type == "software")).scalars().all()
            if not any((p.get("artifact") or {}).get("sha256") == sha256 for p in allowed):
                raise PermissionDenied("this device has no active job that needs this artifact", sha256=sha256)
            blob = s.get(m.Blob, sha256)
            if blob is None:
                raise NotFound("Artifact not found", sha256=sha256)
            if offset < 0 or offset > blob.size:
                raise InvalidArgument(f"offset must be between 0 and {blob.size}", parameter="offset")
            rows = s.execute(select(m.BlobChunk.seq, m.BlobChunk.offset, func.length(m.BlobChunk.data))
                             .where(m.BlobChunk.sha256 == sha256).order_by(m.BlobChunk.seq)).all()
            return blob.size, [(seq, off, ln) for seq, off, ln in rows if off + ln > offset]

    def _chunk(self, sha256: str, seq: int) -> bytes:
        with self.app.store.read() as s:
            data = s.scalar(select(m.BlobChunk.data).where(m.BlobChunk.sha256 == sha256, m.BlobChunk.seq == seq))
            return bytes(data or b"")

    @streaming
    async def DownloadArtifact(self, request: agent_pb2.DownloadArtifactRequest,  # noqa: N802
                               context: grpc.aio.ServicerContext) -> AsyncIterator[agent_pb2.ArtifactChunk]:
        device_id = await self._authenticate(context)
        total, chunks = await self.app.run(self._artifact_chunks, device_id, request.sha256.lower(), request.offset)
        for seq, off, _length in chunks:
            data = await self.app.run(self._chunk, request.sha256.lower(), seq)
            start = max(0, request.offset - off)
            yield agent_pb2.ArtifactChunk(data=data[start:], offset=off + start, total_size=total)
