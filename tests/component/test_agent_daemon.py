"""The agent daemon as a real `convoy agent run` process against a coordinator test double.

`FakeCoordinator` implements AgentService Connect/DownloadArtifact per docs/protocol.md on a
real grpc.aio server (port 0, its own loop in a thread): it welcomes, records every message,
acknowledges terminal statuses (live or in the hello's journal) when told to, and can drop a
stream, cut a download, or serve tampered bytes. Each script job bumps an on-disk counter, so
"ran once" is proven by the file, not by what the agent says.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import struct_pb2

from agent.state import AgentIdentity, StateDir
from common import transport
from common.convoy.v1 import agent_pb2, agent_pb2_grpc
from tests.harness import CONVOY, ROOT

CREDENTIAL = "cvy_dev_test-credential"
TERMINAL = {"completed", "failed", "skipped", "cancelled"}
CHUNK = 16 * 1024


class FakeCoordinator(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.lock = threading.Lock()
        self.hellos: list[agent_pb2.Hello] = []
        self.statuses: list[agent_pb2.JobStatus] = []
        self.heartbeats = 0
        self.download_requests: list[tuple[str, int]] = []
        self.artifacts: dict[str, bytes] = {}
        self.cut_first_download_at: int | None = None
        self.auto_ack = True
        self.heartbeat_interval = 0.5
        self.jobs_on_connect: list[agent_pb2.Job] = []
        self._outbox: asyncio.Queue[agent_pb2.CoordinatorMessage | None] | None = None

    # --- lifecycle, from the test thread ---

    def start(self) -> None:
        self.thread.start()
        self._run(self._start())

    async def _start(self) -> None:
        self.server = transport.aio_server()
        agent_pb2_grpc.add_AgentServiceServicer_to_server(self, self.server)
        self.port = transport.bind(self.server, "127.0.0.1:0", None)
        await self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self._run(self.server.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def _run(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(15)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def send(self, **kind: Any) -> None:
        """Push a CoordinatorMessage to the live stream (job=…, cancel=…, config=…)."""
        msg = agent_pb2.CoordinatorMessage(**kind)
        self.loop.call_soon_threadsafe(lambda: self._outbox.put_nowait(msg) if self._outbox else None)

    def drop_stream(self) -> None:
        self.loop.call_soon_threadsafe(lambda: self._outbox.put_nowait(None) if self._outbox else None)

    # --- what happened ---

    def statuses_of(self, job_id: str) -> list[agent_pb2.JobStatus]:
        with self.lock:
            return [s for s in self.statuses if s.job_id == job_id]

    def states_of(self, job_id: str) -> list[str]:
        return [s.state for s in self.statuses_of(job_id)]

    def wait(self, predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; statuses: {[(s.job_id, s.state, s.reason) for s in self.statuses]}")

    def wait_state(self, job_id: str, state: str, timeout: float = 20) -> agent_pb2.JobStatus:
        def find() -> agent_pb2.JobStatus | None:
            return next((s for s in self.statuses_of(job_id) if s.state == state), None)
        return self.wait(find, timeout, f"job {job_id} {state}")  # type: ignore[no-any-return]

    # --- AgentService ---

    async def Connect(self, request_iterator: AsyncIterator[agent_pb2.AgentMessage],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[agent_pb2.CoordinatorMessage]:
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {CREDENTIAL}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown device credential")
        outbox: asyncio.Queue[agent_pb2.CoordinatorMessage | None] = asyncio.Queue()
        self._outbox = outbox
        first = await anext(aiter(request_iterator))
        assert first.WhichOneof("kind") == "hello"
        with self.lock:
            self.hellos.append(first.hello)
        yield agent_pb2.CoordinatorMessage(welcome=agent_pb2.Welcome(
            device_id="dev-1", heartbeat_interval_seconds=self.heartbeat_interval))
        for status in first.hello.journal:
            self._on_status(status, outbox)
        for job in self.jobs_on_connect:
            outbox.put_nowait(agent_pb2.CoordinatorMessage(job=job))

        async def read() -> None:
            async for msg in request_iterator:
                kind = msg.WhichOneof("kind")
                if kind == "heartbeat":
                    with self.lock:
                        self.heartbeats += 1
                elif kind == "job_status":
                    self._on_status(msg.job_status, outbox)
            outbox.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while True:
                msg = await outbox.get()
                if msg is None:
                    return
                yield msg
        finally:
            reader.cancel()
            if self._outbox is outbox:
                self._outbox = None

    def _on_status(self, status: agent_pb2.JobStatus, outbox: asyncio.Queue[Any]) -> None:
        with self.lock:
            self.statuses.append(status)
        if self.auto_ack and status.state in TERMINAL:
            outbox.put_nowait(agent_pb2.CoordinatorMessage(ack=agent_pb2.Ack(job_id=status.job_id, state=status.state)))

    async def DownloadArtifact(self, request: agent_pb2.DownloadArtifactRequest,
                               context: grpc.aio.ServicerContext) -> AsyncIterator[agent_pb2.ArtifactChunk]:
        with self.lock:
            self.download_requests.append((request.sha256, request.offset))
            first = len(self.download_requests) == 1
        data = self.artifacts.get(request.sha256)
        if data is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such artifact")
            return
        offset = request.offset
        while offset < len(data):
            if first and self.cut_first_download_at is not None and offset >= self.cut_first_download_at:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset (test)")
            piece = data[offset:offset + CHUNK]
            yield agent_pb2.ArtifactChunk(data=piece, offset=offset, total_size=len(data))
            offset += len(piece)


class AgentProcess:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.log_path = state_dir.parent / f"{state_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([*CONVOY, "agent", "run", "--state-dir", str(self.state_dir), "--log-level", "debug"],
                                     stdout=log, stderr=log, cwd=ROOT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def coordinator() -> Iterator[FakeCoordinator]:
    c = FakeCoordinator()
    c.start()
    yield c
    c.stop()


@pytest.fixture
def make_agent(tmp_path: Path, coordinator: FakeCoordinator) -> Iterator[Callable[..., AgentProcess]]:
    agents: list[AgentProcess] = []

    def make(windows: list[str] | None = None, credential: str = CREDENTIAL) -> AgentProcess:
        state = StateDir(tmp_path / "agent")
        if not state.is_enrolled():
            state.save(AgentIdentity(server=coordinator.target, device_id="dev-1", client_id="c-1", machine_id="m-1",
                                    insecure=True),
                       credential)
        if windows is not None:
            state.windows_path.write_text("# test windows\n" + "\n".join(windows) + "\n")
        agent = AgentProcess(state.root)
        agent.start()
        agents.append(agent)
        return agent

    yield make
    for a in agents:
        a.stop()


def script_job(job_id: str, counter: Path, deployment: str = "dep-1", extra: str = "", **fields: Any) -> agent_pb2.Job:
    payload = struct_pb2.Struct()
    payload.update({"interpreter": "sh", "parameters": {"counter": str(counter)},
                    "body": 'n=$(cat "$CONVOY_PARAM_COUNTER" 2>/dev/null || echo 0); echo $((n+1)) > "$CONVOY_PARAM_COUNTER"\n'
                            f'echo "ran $CONVOY_JOB_ID"\n{extra}'})
    return agent_pb2.Job(job_id=job_id, deployment_id=deployment, attempt=1, type="script", payload=payload,
                         timeout_seconds=60, **fields)


def count(path: Path) -> int:
    return int(path.read_text()) if path.exists() else 0


def portable_package(marker: Path, filler: int = 0) -> bytes:
    manifest = {"name": "demo", "version": "1.0", "install": ["sh", "-c", f"echo installed > {marker}"],
                "uninstall": ["sh", "-c", f"rm -f {marker}"]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("convoy-manifest.json", json.dumps(manifest).encode()), ("blob.bin", os.urandom(filler))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def software_job(job_id: str, sha256: str, size: int, deployment: str = "dep-sw") -> agent_pb2.Job:
    payload = struct_pb2.Struct()
    payload.update({"artifact": {"sha256": sha256, "size": size, "name": "demo.tar.gz", "kind": "tar.gz"},
                    "action": "install"})
    return agent_pb2.Job(job_id=job_id, deployment_id=deployment, attempt=1, type="software", payload=payload,
                         timeout_seconds=60)


# --- tests ---------------------------------------------------------------------------------

def test_hello_heartbeats_and_a_job_delivered_twice_runs_once(coordinator: FakeCoordinator, make_agent: Any,
                                                              tmp_path: Path) -> None:
    make_agent(windows=["daily 00:00-24:00 UTC", "not a window"])
    hello = coordinator.wait(lambda: coordinator.hellos and coordinator.hellos[0], what="hello")
    assert hello.agent_version and hello.facts.hostname and hello.facts.cpu_count > 0
    assert list(hello.maintenance_windows) == ["daily 00:00-24:00 UTC"]  # the bad line is left out
    assert list(hello.journal) == []

    counter = tmp_path / "counter"
    job = script_job("job-1", counter)
    coordinator.send(job=job)
    coordinator.send(job=job)  # delivered twice at once
    done = coordinator.wait_state("job-1", "completed")
    assert done.exit_code == 0 and "ran job-1" in done.output
    coordinator.send(job=job)  # and again after it finished (and was acknowledged)
    coordinator.wait(lambda: coordinator.states_of("job-1").count("completed") >= 2, what="status re-sent")
    time.sleep(0.5)
    assert count(counter) == 1
    states = coordinator.states_of("job-1")
    # Each redelivery is answered with the job's current status, whatever it is by then.
    assert states[0] == "received" and "installing" in states and len(states) == 5, states
    coordinator.wait(lambda: coordinator.heartbeats >= 2, what="heartbeats")


def test_results_are_resent_until_acknowledged(coordinator: FakeCoordinator, make_agent: Any, tmp_path: Path) -> None:
    coordinator.auto_ack = False
    make_agent()
    coordinator.wait(lambda: coordinator.hellos, what="hello")
    counter = tmp_path / "counter"
    coordinator.send(job=script_job("job-r", counter, extra="exit 4\n"))
    coordinator.wait_state("job-r", "failed")

    coordinator.drop_stream()  # no ack before the stream went away
    coordinator.wait(lambda: len(coordinator.hellos) >= 2, what="reconnect")
    resent = {s.job_id: s for s in coordinator.hellos[1].journal}
    assert resent["job-r"].state == "failed" and resent["job-r"].exit_code == 4 and resent["job-r"].reason == "exit code 4"

    coordinator.auto_ack = True
    coordinator.drop_stream()  # this time the hello's journal entry is acknowledged
    coordinator.wait(lambda: len(coordinator.hellos) >= 3, what="second reconnect")
    coordinator.wait(lambda: "job job-r failed acknowledged" in (tmp_path / "agent.log").read_text(), what="ack logged")
    coordinator.drop_stream()
    coordinator.wait(lambda: len(coordinator.hellos) >= 4, what="third reconnect")
    assert list(coordinator.hellos[3].journal) == []
    assert count(counter) == 1


def test_agent_killed_mid_install_reports_failure_and_never_reruns(coordinator: FakeCoordinator, make_agent: Any,
                                                                   tmp_path: Path) -> None:
    counter, pidfile = tmp_path / "counter", tmp_path / "script.pid"
    job = script_job("job-k", counter, extra=f"echo $$ > {pidfile}\nsleep 60\n")
    agent = make_agent()
    coordinator.wait(lambda: coordinator.hellos, what="hello")
    coordinator.send(job=job)
    coordinator.wait_state("job-k", "installing")
    coordinator.wait(lambda: pidfile.exists() and pidfile.read_text().strip(), what="script started")
    agent.signal(signal.SIGKILL)
    agent.wait()
    os.kill(int(pidfile.read_text()), signal.SIGKILL)  # the orphaned script: not the agent's to finish

    coordinator.jobs_on_connect = [job]  # the coordinator still thinks the job is delivered
    make_agent()
    coordinator.wait(lambda: len(coordinator.hellos) >= 2, what="hello after restart")
    journal = {s.job_id: s for s in coordinator.hellos[1].journal}
    assert journal["job-k"].state == "failed" and journal["job-k"].reason == "agent restarted during install"
    coordinator.wait(lambda: coordinator.states_of("job-k").count("failed") >= 2, what="status re-sent for redelivery")
    time.sleep(0.5)
    assert count(counter) == 1


def test_a_download_cut_halfway_resumes_from_its_offset(coordinator: FakeCoordinator, make_agent: Any,
                                                         tmp_path: Path) -> None:
    marker = tmp_path / "installed"
    data = portable_package(marker, filler=200_000)
    sha = hashlib.sha256(data).hexdigest()
    coordinator.artifacts[sha] = data
    coordinator.cut_first_download_at = len(data) // 2
    make_agent()
    coordinator.wait(lambda: coordinator.hellos, what="hello")
    coordinator.send(job=software_job("job-d", sha, len(data)))
    done = coordinator.wait_state("job-d", "completed")
    assert coordinator.states_of("job-d") == ["received", "downloading", "installing", "completed"], done
    offsets = [offset for _, offset in coordinator.download_requests]
    assert offsets[0] == 0 and len(offsets) == 2 and len(data) // 2 <= offsets[1] < len(data)
    assert marker.read_text() == "installed\n"


def test_a_tampered_artifact_is_never_installed(coordinator: FakeCoordinator, make_agent: Any, tmp_path: Path) -> None:
    good = portable_package(tmp_path / "installed", filler=50_000)
    sha = hashlib.sha256(good).hexdigest()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    other = hashlib.sha256(b"something else").hexdigest()
    truncated_sha = hashlib.sha256(good + b"x").hexdigest()  # a key of its own for the truncated copy
    coordinator.artifacts[sha] = bytes(flipped)             # one byte flipped
    coordinator.artifacts[truncated_sha] = good[:-100]      # truncated
    coordinator.artifacts[other] = good                     # payload names the wrong hash
    make_agent()
    coordinator.wait(lambda: coordinator.hellos, what="hello")
    coordinator.send(job=software_job("job-flip", sha, len(good), "d1"))
    coordinator.send(job=software_job("job-trunc", truncated_sha, len(good), "d2"))
    coordinator.send(job=software_job("job-wrong", other, len(good), "d3"))

    flip = coordinator.wait_state("job-flip", "failed")
    assert flip.reason.startswith(f"sha256 mismatch: expected {sha} got ")
    trunc = coordinator.wait_state("job-trunc", "failed")
    assert trunc.reason.startswith("size mismatch: expected ") and str(len(good)) in trunc.reason
    wrong = coordinator.wait_state("job-wrong", "failed")
    assert wrong.reason == f"sha256 mismatch: expected {other} got {sha}"
    for job_id in ("job-flip", "job-trunc", "job-wrong"):
        assert "installing" not in coordinator.states_of(job_id)
    assert not (tmp_path / "installed").exists()
    state = StateDir(tmp_path / "agent")
    assert not (state.packages_dir / "demo").exists() and not list(state.work_dir.glob("*.part"))


def test_outside_its_window_a_job_is_skipped_and_a_cancel_before_start_cancels(coordinator: FakeCoordinator,
                                                                                make_agent: Any, tmp_path: Path) -> None:
    not_today = (datetime.now(UTC) + timedelta(days=3)).strftime("%a")
    make_agent(windows=[f"{not_today} 01:00-02:00 UTC"])
    coordinator.wait(lambda: coordinator.hellos, what="hello")
    counter = tmp_path / "counter"

    coordinator.send(job=script_job("job-w", counter, "dep-w", respect_maintenance_windows=True))
    skipped = coordinator.wait_state("job-w", "skipped")
    assert skipped.reason == "outside_maintenance_window"

    # Same deployment: job-b waits behind job-a, and is cancelled before it starts.
    coordinator.send(job=script_job("job-a", counter, "dep-c", extra="sleep 2\n"))
    coordinator.wait_state("job-a", "installing")
    coordinator.send(job=script_job("job-b", counter, "dep-c"))
    coordinator.wait_state("job-b", "received")
    coordinator.send(cancel=agent_pb2.CancelJob(job_id="job-b", reason="deployment cancelled"))
    cancelled = coordinator.wait_state("job-b", "cancelled")
    assert cancelled.reason == "deployment cancelled"
    # A cancel for a job already installing does not stop it.
    coordinator.send(cancel=agent_pb2.CancelJob(job_id="job-a"))
    coordinator.wait_state("job-a", "completed")
    time.sleep(0.3)
    assert count(counter) == 1  # only job-a ran
    assert "installing" not in coordinator.states_of("job-b")


def test_a_policy_changes_the_heartbeat_interval_at_once(coordinator: FakeCoordinator, make_agent: Any) -> None:
    coordinator.heartbeat_interval = 30
    make_agent()
    coordinator.wait(lambda: coordinator.hellos, what="hello")
    payload = struct_pb2.Struct()
    payload.update({"name": "agent-settings", "version": 1, "action": "apply",
                    "document": {"heartbeatIntervalSeconds": 1, "maintenanceWindows": ["daily 00:00-24:00 UTC"]}})
    coordinator.send(job=agent_pb2.Job(job_id="job-p", deployment_id="dep-p", attempt=1, type="policy", payload=payload))
    coordinator.wait_state("job-p", "completed")
    # The new windows are reported in a fresh hello; heartbeats now come every second.
    coordinator.wait(lambda: len(coordinator.hellos) >= 2, what="hello with the policy's windows")
    assert list(coordinator.hellos[-1].maintenance_windows) == ["daily 00:00-24:00 UTC"]
    before = coordinator.heartbeats
    coordinator.wait(lambda: coordinator.heartbeats >= before + 2, timeout=5, what="faster heartbeats")


def test_sigterm_lets_the_installing_job_finish_then_exits_zero(coordinator: FakeCoordinator, make_agent: Any,
                                                                 tmp_path: Path) -> None:
    agent = make_agent()
    coordinator.wait(lambda: coordinator.hellos, what="hello")
    counter = tmp_path / "counter"
    coordinator.send(job=script_job("job-t", counter, extra="sleep 1\n"))
    coordinator.wait_state("job-t", "installing")
    agent.signal(signal.SIGTERM)
    assert agent.wait(20) == 0
    assert coordinator.states_of("job-t")[-1] == "completed"
    assert count(counter) == 1


def test_a_rejected_credential_stops_the_agent(coordinator: FakeCoordinator, make_agent: Any) -> None:
    agent = make_agent(credential="cvy_dev_revoked")
    assert agent.wait(20) == 3
    assert "credential rejected: re-enroll with convoy agent install" in agent.log


def test_reconnect_delay_is_jittered_and_capped() -> None:
    import random

    from agent.daemon import reconnect_delay

    rng = random.Random(7)
    first = [reconnect_delay(0, rng) for _ in range(2000)]
    # Full jitter over the whole window (issue 14): a restart's ten thousand reconnects spread
    # evenly over 0-3 s, not bunched in its second half.
    assert all(0.05 <= d <= 3.0 for d in first)
    assert sum(d < 1.0 for d in first) > 500 and sum(d > 2.0 for d in first) > 500
    later = [reconnect_delay(n, rng) for n in (5, 6, 50, 10_000) for _ in range(50)]
    assert all(0.05 <= d <= 30.0 for d in later) and max(later) > 25.0
