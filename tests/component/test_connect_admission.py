"""(issue 14) Connect under a reconnect storm: admission (a busy coordinator refuses a stream with
RESOURCE_EXHAUSTED and a retry hint) and the batched authentication of streams that arrive
together (each gets its own answer). Real gRPC to an in-process coordinator; both backends."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from common import transport
from common.convoy.v1 import agent_pb2, agent_pb2_grpc, types_pb2
from tests.agents import ScriptedAgent
from tests.component.deploy_helpers import fleet
from tests.harness import InProcessCoordinator


@pytest.fixture
def coord(db_url: str, tmp_path: Path) -> Iterator[InProcessCoordinator]:
    c = InProcessCoordinator(db_url=db_url, data_dir=tmp_path / "c", connect_admission_limit=3)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def roomy(db_url: str, tmp_path: Path) -> Iterator[InProcessCoordinator]:
    c = InProcessCoordinator(db_url=db_url, data_dir=tmp_path / "r")  # the default limit: admits them all
    c.start()
    yield c
    c.stop()


def _open(target: str, credential: str) -> agent_pb2.CoordinatorMessage:
    """One Connect: the hello, then the coordinator's first message (or its error)."""
    stub = agent_pb2_grpc.AgentServiceStub(transport.sync_channel(target, transport.PLAINTEXT))
    hello = agent_pb2.AgentMessage(hello=agent_pb2.Hello(agent_version="test", facts=types_pb2.DeviceFacts(
        hostname="h", os="linux")))
    call = stub.Connect(iter([hello]), metadata=[("authorization", f"Bearer {credential}")], timeout=10)
    try:
        return next(iter(call))
    finally:
        call.cancel()


def test_a_busy_coordinator_refuses_a_stream_with_a_retry_hint(coord: InProcessCoordinator) -> None:
    [dev] = fleet(coord, 1, connect=False)
    hub = coord.coordinator.app.hub
    hub.connecting = 3  # three streams being set up: as many as this coordinator takes at once
    try:
        with pytest.raises(grpc.RpcError) as err:
            _open(coord.grpc_target, dev.credential)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        meta = dict(err.value.trailing_metadata())
        assert meta["convoy-error-code"] == "busy"
        assert 500 <= json.loads(meta["convoy-error-details"])["retryAfterMs"] <= 3000
    finally:
        hub.connecting = 0
    # Once there is room, the same device is welcomed.
    assert _open(coord.grpc_target, dev.credential).HasField("welcome")


def test_streams_authenticated_together_each_get_their_own_answer(roomy: InProcessCoordinator) -> None:
    coord = roomy
    devs = fleet(coord, 6, connect=False)
    intruder = ScriptedAgent(coord.grpc_target, "intruder", credential="cvy_dev_not-a-real-credential")
    answers: dict[str, object] = {}

    def one(name: str, credential: str) -> None:
        try:
            answers[name] = _open(coord.grpc_target, credential).welcome.device_id
        except grpc.RpcError as exc:
            answers[name] = exc.code()

    threads = [threading.Thread(target=one, args=(a.name, a.credential)) for a in [*devs, intruder]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert {a.name: answers[a.name] for a in devs} == {a.name: a.device_id for a in devs}
    assert answers["intruder"] == grpc.StatusCode.UNAUTHENTICATED
