"""(issue 10, item 6) `convoy agent simulate --channels N` opens N separate TCP connections.

Counted from the outside: the ESTABLISHED TCP sockets of the simulator process whose remote end
is the coordinator's gRPC port (distinct local ports, as the server's `context.peer()` would see
them). The control shows what is measured: N channels to one target *without* a local subchannel
pool share a single connection, with it (`agent.simulate.own_channel`) they do not.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import psutil
import pytest

from agent.simulate import own_channel
from common import transport
from common.convoy.v1 import admin_pb2 as pb
from tests.agents import wait_for
from tests.harness import CONVOY, ROOT, InProcessCoordinator, terminate


def _connections_to(pid: int, port: int) -> set[int]:
    """Local ports of `pid`'s established TCP connections to 127.0.0.1:`port`."""
    conns = psutil.Process(pid).net_connections(kind="tcp")
    return {c.laddr.port for c in conns
            if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == port}


def test_simulate_with_n_channels_holds_n_connections(coordinator: InProcessCoordinator) -> None:
    c = coordinator
    token = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id)).token
    proc = subprocess.Popen([*CONVOY, "agent", "simulate", "--server", c.grpc_target, "--token", token, "--insecure",
                             "--count", "24", "--channels", "5", "--wave", "8", "--stats-interval", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        events: list[dict[str, Any]] = []
        while not any(e.get("event") == "connected" for e in events):
            line = proc.stdout.readline()
            assert line, f"simulator ended: {proc.stderr.read() if proc.stderr else ''}"
            events.append(json.loads(line))
        assert events[-1]["count"] == 24
        wait_for(lambda: len(c.coordinator.app.hub.connections) == 24, what="24 streams on the coordinator")
        port = c.coordinator.grpc_port
        # The enrollment channels are closed once enrolled: what stays is one connection per channel.
        wait_for(lambda: len(_connections_to(proc.pid, port)) == 5, timeout=10, what="5 connections")
        assert len(_connections_to(proc.pid, port)) == 5
    finally:
        terminate(proc)


def test_channels_share_one_connection_unless_each_has_its_own_pool(coordinator: InProcessCoordinator) -> None:
    import os

    target, port = coordinator.grpc_target, coordinator.coordinator.grpc_port

    async def open_channels(own: bool) -> int:
        chans = [own_channel(target, transport.PLAINTEXT) if own else transport.aio_channel(target, transport.PLAINTEXT)
                 for _ in range(4)]
        try:
            await asyncio.gather(*(asyncio.wait_for(ch.channel_ready(), 10) for ch in chans))
            return len(_connections_to(os.getpid(), port))
        finally:
            for ch in chans:
                await ch.close()

    assert asyncio.run(open_channels(own=False)) == 1
    assert asyncio.run(open_channels(own=True)) == 4


@pytest.mark.parametrize("spread", [True, False])
def test_simulated_agents_spread_over_replicas_and_move_when_one_stops(tmp_path: Any, spread: bool) -> None:
    """`--server A,B`: agents start on A (with `--spread`: half on each); when A goes away their
    streams move to B."""
    db = f"sqlite:///{tmp_path / 'convoy.db'}"
    a = InProcessCoordinator(db, tmp_path / "a")
    a.start()
    b = InProcessCoordinator(db, tmp_path / "b")
    b.start(bootstrap=False)
    proc = None
    try:
        token = a.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=a.client_id)).token
        servers = f"{a.grpc_target},{b.grpc_target}"
        proc = subprocess.Popen([*CONVOY, "agent", "simulate", "--server", servers, "--token", token, "--insecure",
                                 "--count", "10", "--channels", "2", "--stats-interval", "0.2", "--seed", "1",
                                 *(["--spread"] if spread else [])],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        assert proc.stdout is not None
        stdout = proc.stdout

        def next_stats(pred: Any, limit: int = 200) -> dict[str, Any]:
            for _ in range(limit):
                line = stdout.readline()
                assert line, f"simulator ended: {proc.stderr.read() if proc and proc.stderr else ''}"
                event = json.loads(line)
                if event.get("event") == "stats" and pred(event):
                    return dict(event)
            raise AssertionError("no such stats line")

        first = next_stats(lambda e: e.get("streams") == 10)
        on_a = 5 if spread else 10
        assert first["by_server"] == {a.grpc_target: on_a, b.grpc_target: 10 - on_a}
        assert len(a.coordinator.app.hub.connections) == on_a and len(b.coordinator.app.hub.connections) == 10 - on_a
        a.stop()
        moved = next_stats(lambda e: e.get("by_server", {}).get(b.grpc_target) == 10)
        assert moved["streams"] == 10 and moved["by_server"][a.grpc_target] == 0
        wait_for(lambda: len(b.coordinator.app.hub.connections) == 10, what="10 streams on B")
    finally:
        terminate(proc)
        b.stop()
        if a.thread.is_alive():
            a.stop()
