"""Concurrent Enroll and ReportEnrollment calls over real gRPC, written a batch per transaction:
every call gets its own answer, a token's last uses go to exactly as many calls as it has, and
the failures still count against the caller's address (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging

import grpc
import grpc.aio
import pytest
from sqlalchemy import select

from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import agent_pb2 as apb
from common.convoy.v1 import agent_pb2_grpc
from coordinator.store import models as m
from tests.harness import InProcessCoordinator


async def _burst(target: str, token: str, n: int) -> list[apb.EnrollResponse | grpc.aio.AioRpcError]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)

        async def one(i: int) -> apb.EnrollResponse | grpc.aio.AioRpcError:
            try:
                return await stub.Enroll(apb.EnrollRequest(token=token, machine_id=f"burst-{i:03d}",
                                                           agent_version="0.1.0"), timeout=30)
            except grpc.aio.AioRpcError as exc:
                return exc

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _reports(target: str, enrolled: list[apb.EnrollResponse]) -> list[str]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        out = await asyncio.gather(*(stub.ReportEnrollment(
            apb.ReportEnrollmentRequest(enrollment_id=e.enrollment_id, success=True, log_lines=["ok"]),
            metadata=(("authorization", f"Bearer {e.credential}"),), timeout=30) for e in enrolled))
        return [r.status for r in out]


def test_a_burst_is_batched_and_the_last_uses_go_to_exactly_that_many_calls(
        coordinator_any: InProcessCoordinator, caplog: pytest.LogCaptureFixture) -> None:
    c = coordinator_any
    admin = c.admin()
    tok = admin.CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id, max_uses=40))
    with caplog.at_level(logging.WARNING, logger="convoy.enrollment"):
        out = asyncio.run(_burst(c.grpc_target, tok.token, 60))
    won = [o for o in out if isinstance(o, apb.EnrollResponse)]
    lost = [o for o in out if not isinstance(o, apb.EnrollResponse)]
    assert len(won) == 40 and len({w.device_id for w in won}) == 40
    assert len(lost) == 20 and all(e.code() == grpc.StatusCode.UNAUTHENTICATED and "used up" in (e.details() or "")
                                   for e in lost)
    with c.store.read() as s:  # a batch's records share its timestamp: the calls shared transactions
        dates = set(s.scalars(select(m.DeviceEnrollment.enrollment_date)))
    assert len(dates) < 40
    # every refusal is logged with its source and counted against it: 20 failures is the limit
    assert sum("Enroll from ipv4:127.0.0.1" in r.message and "used up" in r.message for r in caplog.records) == 20
    more = asyncio.run(_burst(c.grpc_target, tok.token, 1))[0]
    assert isinstance(more, grpc.aio.AioRpcError) and more.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    assert asyncio.run(_reports(c.grpc_target, won)) == ["success"] * 40
    listed = admin.ListEnrollmentTokens(pb.ListEnrollmentTokensRequest(client_id=c.client_id))
    assert [t.uses for t in listed.data if t.id == tok.id] == [40]
    assert admin.ListDevices(pb.ListDevicesRequest(client_id=c.client_id, limit=100)).total == 40
