"""AgentService: the Connect stream and DownloadArtifact (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from sqlalchemy import select

from common.convoy.v1 import agent_pb2
from common.errors import ConvoyError, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from common.secrets import hash_secret
from coordinator.api.base import Api
from coordinator.api.grpc_util import metadata_bearer, presented_certificate, streaming, unary
from coordinator.auth import authenticate_agent, check_certificate, revoked
from coordinator.engine.rollout import JOB_TERMINAL, Report
from coordinator.store import models as m
from coordinator.store.inlist import id_in

log = logging.getLogger("convoy.agent-stream")

RETRY_AFTER_MS = (500, 3000)
"""The retry hint of a refused stream, drawn uniformly (scaled up by the backlog): the refused
agents come back spread out, not together."""


class Busy(ConvoyError):
    """The coordinator is setting up as many agent streams as it takes at once (a reconnect
    storm): the agent waits `retryAfterMs` and tries again, quietly (agent/daemon.py)."""

    code = "busy"
    http_status = 429
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED


def _report(device_id: str, st: agent_pb2.JobStatus) -> Report:
    from coordinator.domain import device_input  # every field a device sends is bounded first
    job_id, state, exit_code, output, reason = device_input.job_status(st)
    # Output is arbitrary program text; NUL bytes cannot be stored in PostgreSQL text columns.
    return Report(device_id=device_id, job_id=job_id, state=state, exit_code=exit_code,
                  output=output.replace("\x00", ""), reason=reason.replace("\x00", ""))


Identity = tuple[str, agent_pb2.TrustSetUpdate | None]
Key = tuple[str, str]
"""A Connect's (device credential, `sha256:` of the client certificate it presented or "")."""


class IdentityBatch:
    """The Connect authentications that arrive together, read in one store round trip: a
    reconnect storm is thousands of them in a few seconds, and one ORM query per agent (device,
    then trust set) was a third of the restarted coordinator's CPU. While one batch is read, the
    next one gathers."""

    def __init__(self, app: Any, read: Any) -> None:
        self.app = app
        self._read = read
        self._pending: dict[Key, list[asyncio.Future[Identity]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def identity(self, credential: str, presented: str) -> Identity:
        fut: asyncio.Future[Identity] = asyncio.get_running_loop().create_future()
        self._pending.setdefault((credential, presented), []).append(fut)
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="connect-auth")
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, {}
                try:
                    found: dict[Key, Identity | Unauthenticated] = await self.app.run(self._read, list(batch))
                except Exception as exc:  # noqa: BLE001 - each waiting Connect maps it to its status
                    for futs in batch.values():
                        for f in futs:
                            if not f.done():
                                f.set_exception(exc)
                    continue
                for key, futs in batch.items():
                    ident = found.get(key)
                    for f in futs:
                        if f.done():
                            continue  # that Connect was cancelled meanwhile
                        if ident is None:
                            f.set_exception(Unauthenticated(
                                "invalid device credential: re-enroll this device with `convoy agent install`"))
                        elif isinstance(ident, Unauthenticated):  # revoked, or without its certificate
                            f.set_exception(ident)
                        else:
                            f.set_result(ident)
        finally:
            self._task = None


class StreamRpcs(Api):
    def _device_id(self, credential: str, presented: str) -> str:
        with self.app.store.read() as s:
            return authenticate_agent(s, credential, presented, not self.app.settings.require_device_certs).id

    def _connect_identities(self, keys: list[Key]) -> dict[Key, Identity | Unauthenticated]:
        """Each (credential, presented certificate)'s device and its client's published trust-set
        document (docs/security.md, "Signed work"), for many calls in two statements: the devices
        by credential hash, then their clients' documents. A revoked device, or one whose call
        does not present its device certificate, gets its refusal; unknown credentials are left out."""
        by_hash: dict[str, list[Key]] = {}
        for key in keys:
            by_hash.setdefault(hash_secret(key[0]), []).append(key)
        out: dict[Key, Identity | Unauthenticated] = {}
        allow_bearer_only = not self.app.settings.require_device_certs
        dev, doc = m.Device.__table__.c, m.TrustSetDocument.__table__.c
        # Core on a connection, not the ORM: two plain reads of a few columns, where the session
        # (its setup, ORM compilation, entity loading and close) was most of this function's time.
        with self.app.store.read_engine.connect() as conn:
            devices: list[tuple[Key, str, str]] = []
            for among in id_in(conn, dev.credential_hash, by_hash):
                for h, d, c, revoked_at, cert in conn.execute(
                        select(dev.credential_hash, dev.id, dev.client_id, dev.revoked_at, dev.cert_sha256).where(among)):
                    for key in by_hash[h]:
                        if revoked_at is not None:
                            out[key] = revoked(d, revoked_at)
                            continue
                        try:
                            check_certificate(d, cert, key[1], allow_bearer_only)
                        except Unauthenticated as exc:
                            out[key] = exc
                            continue
                        devices.append((key, d, c))
            trust: dict[str, agent_pb2.TrustSetUpdate] = {}
            for among in id_in(conn, doc.client_id, {c for _k, _d, c in devices}):
                for client_id, document, key_id, signature in conn.execute(
                        select(doc.client_id, doc.document, doc.key_id, doc.signature).where(among)):
                    trust[client_id] = agent_pb2.TrustSetUpdate(document=document, key_id=key_id, signature=signature)
        for key, device_id, client_id in devices:
            out[key] = (device_id, trust.get(client_id))
        return out

    @property
    def _identities(self) -> IdentityBatch:
        batch: IdentityBatch | None = getattr(self, "_identity_batch", None)
        if batch is None:
            batch = self._identity_batch = IdentityBatch(self.app, self._connect_identities)
        return batch

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> str:
        return await self.app.run(self._device_id, metadata_bearer(context), presented_certificate(context))

    def _admit(self) -> None:
        """Refuse the stream (Busy) while as many are being set up as the coordinator takes at
        once: those authenticating now plus the hellos not yet written."""
        hub = self.app.hub
        limit = max(1, self.app.settings.connect_admission_limit)
        pending = hub.connecting + hub.hello_backlog
        if pending >= limit:
            hub.refused += 1
            low, high = RETRY_AFTER_MS
            scale = pending / limit
            raise Busy("the coordinator is taking many agent streams at once; retry after retryAfterMs",
                       retryAfterMs=int(random.uniform(low, high) * scale))

    @unary
    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        # The first message is read before anything can refuse the stream: a status sent while the
        # agent is still writing its hello reaches it as INTERNAL instead (grpc/grpc#36066).
        first = await context.read()
        self._admit()
        hub, engine = self.app.hub, self.app.engine
        hub.connecting += 1
        try:
            device_id, trust = await self._identities.identity(metadata_bearer(context),
                                                               presented_certificate(context))
            if first is grpc.aio.EOF or not first.HasField("hello"):
                raise InvalidArgument("the first message on Connect must be a Hello", parameter="hello")
            conn = hub.register(device_id, first.hello)
        finally:
            hub.connecting -= 1
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
            if conn.refusal:  # revoked while connected: the agent hears why, and stops
                raise Unauthenticated(conn.refusal, device_id=device_id)
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
