"""AgentService: Enroll (authenticated by the enrollment token) and ReportEnrollment (by the
device credential in `authorization: Bearer` metadata).

Every refused Enroll is logged with its source address and counted against that address; a
source with too many failures in a minute (`Settings.enroll_failure_limit`) is refused with
RESOURCE_EXHAUSTED until they age out (coordinator/domain/throttle.py).

Concurrent calls of each method are written together: queued to one writer that commits
everything waiting in one transaction (coordinator/api/call_batcher.py,
coordinator/service/enrollment_batch.py); each call still gets its own answer.
"""

from __future__ import annotations

import logging
import time

import grpc
import grpc.aio

from common.convoy.v1 import agent_pb2 as pb
from common.convoy.v1 import types_pb2 as tpb
from common.errors import ConvoyError
from coordinator.api.base import Api
from coordinator.api.call_batcher import CallBatcher
from coordinator.api.grpc_util import metadata_bearer, presented_certificate, unary
from coordinator.auth import authenticate_agent
from coordinator.domain import device_input
from coordinator.domain.throttle import FailureThrottle, source_host
from coordinator.service import enrollment
from coordinator.service.enrollment_batch import EnrollCall, ReportCall, enroll_batch, report_batch

log = logging.getLogger("convoy.enrollment")


class Throttled(ConvoyError):
    code = "too_many_requests"
    http_status = 429
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED


def facts_from(msg: tpb.DeviceFacts) -> enrollment.Facts:
    msg = device_input.facts_message(msg)
    return enrollment.Facts(
        hostname=msg.hostname, os=msg.os, os_version=msg.os_version, arch=msg.arch,
        cpu_count=msg.cpu_count, memory_bytes=msg.memory_bytes,
        disks=[{"mountpoint": d.mountpoint, "fstype": d.fstype, "total_bytes": d.total_bytes,
                "free_bytes": d.free_bytes} for d in msg.disks],
        ip_addresses=list(msg.ip_addresses))


def optional_bearer(context: grpc.aio.ServicerContext) -> str:
    """The bearer credential in the call's metadata, or "" when none is sent."""
    if not any(key == "authorization" for key, _ in context.invocation_metadata() or ()):
        return ""
    return metadata_bearer(context)


class EnrollmentRpcs(Api):
    _throttle: FailureThrottle | None = None
    _enrolls: CallBatcher[EnrollCall, dict[str, str]] | None = None
    _reports: CallBatcher[ReportCall, str] | None = None

    @property
    def throttle(self) -> FailureThrottle:
        if self._throttle is None:
            self._throttle = FailureThrottle(limit=self.app.settings.enroll_failure_limit)
        return self._throttle

    @property
    def enrolls(self) -> CallBatcher[EnrollCall, dict[str, str]]:
        if self._enrolls is None:
            self._enrolls = CallBatcher("enroll", self._enroll_batch, self.app.settings.enroll_batch_max,
                                        self.app.settings.enroll_batch_linger_s)
        return self._enrolls

    @property
    def reports(self) -> CallBatcher[ReportCall, str]:
        if self._reports is None:
            self._reports = CallBatcher("report-enrollment", self._report_batch, self.app.settings.enroll_batch_max,
                                        self.app.settings.enroll_batch_linger_s)
        return self._reports

    def _enroll_batch(self, calls: list[EnrollCall]) -> list[dict[str, str] | ConvoyError]:
        identity = self._identity()
        with self.app.store.tx() as s:
            return enroll_batch(s, calls, self.app.clock.now(), self.app.settings.enrollment_timeout_s, identity)

    def _report_batch(self, calls: list[ReportCall]) -> list[str | ConvoyError]:
        with self.app.store.tx() as s:
            return report_batch(s, calls, self.app.clock.now(), not self.app.settings.require_device_certs)

    _device_identity: enrollment.DeviceIdentity | None = None

    def _identity(self) -> enrollment.DeviceIdentity:
        """How devices prove themselves here: certificates from the data dir's CA (none when the
        coordinator serves plaintext: `--insecure`). Loaded once: a new CA needs a restart."""
        if self._device_identity is None:
            settings = self.app.settings
            ca = None
            if not settings.insecure:
                from coordinator.device_certs import load_ca

                ca = load_ca(settings.data_dir)
            self._device_identity = enrollment.DeviceIdentity(
                ca=ca, require_certs=settings.require_device_certs and ca is not None,
                lifetime_s=settings.device_cert_lifetime_s)
        return self._device_identity

    @unary
    async def Enroll(self, request: pb.EnrollRequest, context: grpc.aio.ServicerContext) -> pb.EnrollResponse:
        peer = context.peer()
        source = source_host(peer)
        wait = self.throttle.retry_after(source, time.monotonic())
        if wait > 0:
            log.warning("Enroll from %s refused: too many failed enrollments (retry in %.0f s)", peer, wait)
            raise Throttled(f"too many failed enrollments from {source}; try again in {wait:.0f} s",
                            retry_after_seconds=round(wait))
        try:
            # A reinstall proves it is the same device with its current credential, sent as on
            # every other agent call (`authorization: Bearer`); a first install sends none.
            proof = optional_bearer(context)
            out = await self.enrolls.submit(EnrollCall(
                request.token, request.machine_id, facts_from(request.facts), list(request.tags), request.site,
                request.agent_version, proof=proof, source=peer, csr=bytes(request.csr),
                key_proof=request.key_proof, proof_time=request.proof_time, report_success=request.report_success))
        except ConvoyError as exc:
            if exc.http_status < 500:
                n = self.throttle.failed(source, time.monotonic())
                log.warning("Enroll from %s failed (%d in the last minute): %s: %s", peer, n, exc.code, exc.message)
            raise
        return pb.EnrollResponse(heartbeat_interval_seconds=self.app.settings.heartbeat_interval_s,
                                 reported=request.report_success, **out)

    def _renew(self, credential: str, presented: str, csr: bytes) -> dict[str, str]:
        identity = self._identity()
        with self.app.store.tx() as s:
            device = authenticate_agent(s, credential, presented, not self.app.settings.require_device_certs)
            return enrollment.renew_certificate(device, csr, identity, self.app.clock.now())

    @unary
    async def RenewCertificate(self, request: pb.RenewCertificateRequest,  # noqa: N802 - gRPC method name
                               context: grpc.aio.ServicerContext) -> pb.RenewCertificateResponse:
        out = await self.app.run(self._renew, metadata_bearer(context), presented_certificate(context),
                                 bytes(request.csr))
        return pb.RenewCertificateResponse(**out)

    @unary
    async def ReportEnrollment(self, request: pb.ReportEnrollmentRequest,
                               context: grpc.aio.ServicerContext) -> pb.ReportEnrollmentResponse:
        status = await self.reports.submit(ReportCall(metadata_bearer(context), request.enrollment_id,
                                                      request.success, list(request.log_lines),
                                                      presented=presented_certificate(context)))
        return pb.ReportEnrollmentResponse(status=status)
