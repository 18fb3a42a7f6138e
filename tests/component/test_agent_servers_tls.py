"""(issue 10, item 4) Failover addresses keep the pinned CA and the host name check: a DNS name
resolved to several addresses is dialled by IP with the name as TLS server name."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc

from agent.daemon import Dialer
from agent.servers import Rotation
from common import transport
from common.convoy.v1 import agent_pb2, agent_pb2_grpc
from tests.harness import InProcessCoordinator


def test_each_resolved_address_is_checked_against_the_name_and_the_pinned_ca(tmp_path: Path) -> None:
    """Against a real TLS coordinator (its own CA, SANs include localhost): a name that resolves
    to a dead address and a live one gets through on the live one with the certificate checked
    for the name; the same address under a name the certificate does not cover is refused."""
    c = InProcessCoordinator(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "data", insecure=False)
    c.start()
    try:
        port = c.coordinator.grpc_port
        assert c.tls.secure

        async def code(stub: Any) -> grpc.StatusCode:
            try:
                await stub.Enroll(agent_pb2.EnrollRequest(token="cvy_enr_nope", machine_id="m"), timeout=10)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            raise AssertionError("enrolled with a bogus token")

        async def go() -> list[grpc.StatusCode]:
            good = Dialer(Rotation([f"localhost:{port}"], lambda h, p: ["127.0.0.2", "127.0.0.1"]), c.tls)
            bad = Dialer(Rotation([f"evil.example:{port}"], lambda h, p: ["127.0.0.1", "127.0.0.3"]), c.tls)
            try:
                first = await code(good.stub())
                await good.advance()
                assert good.endpoint.target == f"127.0.0.1:{port}" and good.endpoint.tls_name == "localhost"
                second = await code(good.stub())
                wrong_name = await code(bad.stub())
                plain = transport.aio_channel(f"127.0.0.1:{port}", c.tls)
                by_ip = await code(agent_pb2_grpc.AgentServiceStub(plain))  # 127.0.0.1 is a SAN too: the baseline
                await plain.close()
                return [first, second, wrong_name, by_ip]
            finally:
                await good.close()
                await bad.close()

        first, second, wrong_name, by_ip = asyncio.run(go())
        assert first == grpc.StatusCode.UNAVAILABLE  # nothing listens on 127.0.0.2
        assert second == by_ip != grpc.StatusCode.UNAVAILABLE  # reached, TLS checked for "localhost"
        assert wrong_name == grpc.StatusCode.UNAVAILABLE  # the handshake fails: not a name it covers
    finally:
        c.stop()
