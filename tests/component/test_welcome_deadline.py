"""The agent's deadline for a Welcome over real gRPC (docs/protocol.md, Connect, item 6): a
coordinator that takes the hello and never answers does not hold the agent; the stream is given
up (cancelled, so the server sees it end) and the agent connects again with its backoff."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import grpc.aio

from agent.daemon import Daemon
from agent.runner import Runner
from agent.state import AgentIdentity, StateDir
from common import transport
from common.convoy.v1 import agent_pb2, agent_pb2_grpc, types_pb2
from tests.unit.test_reconnect_backoff import RecordingClock


class SilentCoordinator(agent_pb2_grpc.AgentServiceServicer):
    """Reads each stream's hello, then says nothing until the agent gives the stream up."""

    def __init__(self) -> None:
        self.hellos: list[agent_pb2.Hello] = []
        self.ended = 0

    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        first = await context.read()
        self.hellos.append(first.hello)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.ended += 1  # the agent cancelled the call
            raise


async def _no_fetch(sha256: str, size: int | None) -> Path:
    raise AssertionError("no downloads here")


def test_an_unanswered_stream_is_given_up_and_the_agent_connects_again(tmp_path: Path) -> None:
    async def go() -> tuple[int, SilentCoordinator]:
        coordinator = SilentCoordinator()
        server = transport.aio_server()
        agent_pb2_grpc.add_AgentServiceServicer_to_server(coordinator, server)
        port = transport.bind(server, "127.0.0.1:0", None)
        await server.start()
        clock = RecordingClock()  # the backoff's waits return at once; the welcome deadline is real time
        d = Daemon(StateDir(tmp_path), clock=clock, rng=random.Random(5),  # type: ignore[arg-type]
                   facts=lambda: types_pb2.DeviceFacts(hostname="silent"))
        d.identity = AgentIdentity(server=f"127.0.0.1:{port}", device_id="d", client_id="c", machine_id="m")
        d.runner = Runner(state=d.state, journal=d.journal, device_id="d", emit=d.emit, fetch=_no_fetch,
                          windows=d.windows, clock=clock)
        d.welcome_timeout = 0.3
        channel = transport.aio_channel(f"127.0.0.1:{port}", transport.PLAINTEXT)
        try:
            loop = asyncio.create_task(d.connect_loop(agent_pb2_grpc.AgentServiceStub(channel),
                                                      (("authorization", "Bearer cvy_dev_x"),)))
            for _ in range(200):
                if len(coordinator.hellos) >= 3:
                    break
                await asyncio.sleep(0.05)
            d.stop()
            code = await asyncio.wait_for(loop, 10)
            await asyncio.sleep(0.2)  # the last cancel reaches the server
        finally:
            await channel.close()
            await server.stop(0)
        return code, coordinator

    code, coordinator = asyncio.run(go())
    assert code == 0
    assert len(coordinator.hellos) >= 3, "the agent did not connect again after an unanswered stream"
    assert all(h.facts.hostname == "silent" for h in coordinator.hellos)
    assert coordinator.ended >= 2  # every stream given up was cancelled, not left open on the server
