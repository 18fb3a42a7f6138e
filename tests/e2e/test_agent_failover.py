"""(issue 10, done when) Agents given two addresses move to the live one when a replica dies.

Two `convoy coordinator serve` processes (replicas) on one PostgreSQL database, sharing one CA
(the second replica's data dir gets a copy of the first's `tls/ca.*`, as docs/replicas.md tells
operators), each issuing its own server certificate from it. Real `convoy agent install` with
`--server A,B` (half of them `B,A`) pins that CA by fingerprint, and real `convoy agent run`
processes spread over the replicas. SIGKILL of A: its agents reconnect to B (B's
`convoy_agents_connected` counts them all, every device online), and a deployment started through
B then runs exactly once on every device (per-device counter files). PostgreSQL only: skipped
without it, a failure under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common.convoy.v1 import admin_pb2 as pb
from common.device_identity import agent_address
from tests.agents import wait_for
from tests.e2e.test_real_agents import COUNTER_SCHEMA, COUNTER_SCRIPT, counts, script, spec
from tests.harness import (
    PG_ADMIN_URL,
    CoordinatorProcess,
    pg_create_from_template,
    pg_drop,
    run_cli,
)
from tests.real_agents import RealAgent, RealFleet

AGENTS = 4


@pytest.fixture
def pg_url(_pg_template: str | None) -> Iterator[str]:
    if _pg_template is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {PG_ADMIN_URL}")
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    name = f"convoy_t_{uuid.uuid4().hex[:12]}"
    url = pg_create_from_template(name, _pg_template)
    yield url
    pg_drop(name)


def share_ca(src: Path, dst: Path) -> None:
    """What an operator does for a second replica: the same CA (cert and key), in its own data dir."""
    (dst / "tls").mkdir(parents=True, mode=0o700)
    dst.chmod(0o700)
    for name in ("ca.pem", "ca.key"):
        shutil.copy2(src / "tls" / name, dst / "tls" / name)
    (dst / "tls" / "ca.key").chmod(0o600)


def connected(coord: CoordinatorProcess) -> int:
    text = httpx.get(coord.http_url + "/metrics", verify=coord.verify, timeout=10).text
    match = re.search(r"^convoy_agents_connected (\S+)$", text, re.M)
    return int(float(match.group(1))) if match else -1


@pytest.fixture
def replicas(pg_url: str, tmp_path: Path) -> Iterator[tuple[CoordinatorProcess, CoordinatorProcess]]:
    a = CoordinatorProcess(tmp_path / "a", db=pg_url)
    a.bootstrap()
    share_ca(tmp_path / "a", tmp_path / "b")
    b = CoordinatorProcess(tmp_path / "b", db=pg_url)
    a.start()
    b.start()
    b.token, b.client_id = a.token, a.client_id
    assert a.ca_fingerprint == b.ca_fingerprint  # one CA, two server certificates
    try:
        yield a, b
    finally:
        b.stop()
        if a.proc is not None and a.proc.poll() is None:
            a.stop()


def test_agents_move_to_the_live_replica_and_a_deployment_completes_there(
        replicas: tuple[CoordinatorProcess, CoordinatorProcess], tmp_path: Path) -> None:
    a, b = replicas
    root = tmp_path / "agents"
    root.mkdir()
    token = a.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=a.client_id)).token
    agents: list[RealAgent] = []
    fleet = RealFleet(b, root)
    try:
        for i in range(AGENTS):
            agent = RealAgent(a, root, f"agent-{i:02d}")
            order = f"{a.grpc_target},{b.grpc_target}" if i % 2 == 0 else f"{b.grpc_target},{a.grpc_target}"
            out = run_cli("agent", "install", "--server", order, "--token", token, "--state-dir", str(agent.state_dir),
                          "--machine-id", f"fo-{i}", "--no-service", "-o", "json", "--ca-fingerprint", a.ca_fingerprint)
            agent.device_id = json.loads(out.stdout)["device_id"]
            stored = json.loads((agent.state_dir / "agent.json").read_text())
            assert stored["servers"] == order.split(",") and stored["server"] == order.split(",")[0]
            agent.start()
            agents.append(agent)
        fleet.agents = agents
        fleet.wait_online(agents)
        # Each agent is on its first address: half on A, half on B.
        wait_for(lambda: (connected(a), connected(b)) == (AGENTS // 2, AGENTS // 2), timeout=20,
                 what="agents spread over both replicas")

        a.kill()  # SIGKILL: no goodbye to anyone
        killed = time.monotonic()
        wait_for(lambda: connected(b) == AGENTS, timeout=30, what="every agent connected to B")
        moved_after = time.monotonic() - killed
        fleet.wait_online(agents, timeout=10)
        # Well inside the first backoff steps (0.5-1 s, then 1-2 s) plus connect time.
        assert moved_after < 15, moved_after
        for agent in agents[::2]:  # those that were on A say where they went
            # (the agent port: gRPC port + 1, where agents with a device certificate connect)
            wait_for(lambda ag=agent: f"to {agent_address(b.grpc_target)}" in ag.log(), timeout=5,
                     what="reconnect to B logged")

        out_dir = tmp_path / "out"
        out_dir.mkdir()
        sid = script(b, COUNTER_SCRIPT, schema=COUNTER_SCHEMA)
        dep = fleet.deploy(spec("script", {"scriptId": sid, "parameters": {"dir": str(out_dir)}},
                                [ag.device_id for ag in agents]))
        assert fleet.wait_finished(dep, timeout=60)["status"] == "completed"
        assert {k: len(v) for k, v in counts(out_dir).items()} == {ag.device_id: 1 for ag in agents}
        print(f"failover: {AGENTS // 2} agents of the killed replica connected to the other in {moved_after:.2f}s")
    finally:
        for agent in agents:
            agent.stop()
        fleet.http.close()


def test_a_dead_first_address_is_skipped_at_install_and_at_run(coordinator_proc: CoordinatorProcess,
                                                                tmp_path: Path) -> None:
    """No replica needed: an address where nothing listens, then the live coordinator. Install
    proves the CA and enrolls through the second; the daemon starts on the first, is refused, and
    is online through the second after one short wait."""
    coord = coordinator_proc
    dead = "127.0.0.1:1"
    token = coord.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=coord.client_id)).token
    agent = RealAgent(coord, tmp_path, "dead-first")
    out = run_cli("agent", "install", "--server", f"{dead},{coord.grpc_target}", "--token", token, "--state-dir",
                  str(agent.state_dir), "--machine-id", "fo-dead-first", "--no-service", "-o", "json",
                  "--ca-fingerprint", coord.ca_fingerprint)
    assert f"cannot reach the coordinator at {dead}" in out.stderr and f"trying {coord.grpc_target}" in out.stderr
    agent.device_id = json.loads(out.stdout)["device_id"]
    assert json.loads((agent.state_dir / "agent.json").read_text())["servers"] == [dead, coord.grpc_target]
    fleet = RealFleet(coord, tmp_path)
    try:
        started = time.monotonic()
        agent.start()
        fleet.wait_online([agent], timeout=20)
        assert time.monotonic() - started < 15
        log = agent.log()
        # a refused address never answered: logged as such (one warning), not as a broken stream
        assert f"WARNING convoy.agent: stream to {agent_address(dead)} lost before the coordinator answered: UNAVAILABLE" in log
        assert f"to {agent_address(coord.grpc_target)}" in log
    finally:
        agent.stop()
        fleet.http.close()
