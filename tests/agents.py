"""Scripted devices for coordinator tests: they enroll and speak the real AgentService protocol
over gRPC, but decide each job's outcome from a rule instead of installing anything.

This is a test double of the *device*, not of our code: the coordinator under test is real.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format

from common import transport
from common.convoy.v1 import agent_pb2, agent_pb2_grpc, types_pb2

# outcome(agent, job) -> "completed" | "failed" | "hang" | "skipped" | "received" | "ignore"
#   hang: downloading, then nothing (finish it with `finish`); received: journaled, not started
#   (queued behind other work); ignore: not even acknowledged (a job lost on the way).
Outcome = Callable[["ScriptedAgent", agent_pb2.Job], str]


def always(result: str) -> Outcome:
    return lambda _agent, _job: result


@dataclass
class ScriptedAgent:
    target: str
    name: str
    outcome: Outcome = field(default=always("completed"))
    tags: list[str] = field(default_factory=list)
    windows: list[str] = field(default_factory=list)
    device_id: str = ""
    credential: str = ""
    executions: Counter[str] = field(default_factory=Counter)
    jobs: list[agent_pb2.Job] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    cancels: list[str] = field(default_factory=list)
    _out: queue.Queue[agent_pb2.AgentMessage | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    _call: Any = None
    welcomed: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event = field(default_factory=threading.Event)
    last_status: dict[str, agent_pb2.JobStatus] = field(default_factory=dict)
    welcome: agent_pb2.Welcome | None = None
    # The in-process coordinators these agents talk to are plaintext on loopback (tests/harness.py).
    tls: transport.ClientTLS = transport.PLAINTEXT

    def enroll(self, token: str) -> None:
        stub = agent_pb2_grpc.AgentServiceStub(transport.sync_channel(self.target, self.tls))
        facts = types_pb2.DeviceFacts(hostname=self.name, os="linux", os_version="12", arch="x86_64", cpu_count=2)
        resp = stub.Enroll(agent_pb2.EnrollRequest(token=token, machine_id=f"machine-{self.name}", facts=facts,
                                                   agent_version="test", tags=self.tags), timeout=10)
        self.device_id, self.credential = resp.device_id, resp.credential
        stub.ReportEnrollment(agent_pb2.ReportEnrollmentRequest(enrollment_id=resp.enrollment_id, success=True),
                              metadata=[("authorization", f"Bearer {self.credential}")], timeout=10)

    def _requests(self) -> Iterator[agent_pb2.AgentMessage]:
        facts = types_pb2.DeviceFacts(hostname=self.name, os="linux", os_version="12", arch="x86_64", cpu_count=2)
        journal = [st for job_id, st in self.last_status.items() if job_id not in self.acked]
        yield agent_pb2.AgentMessage(hello=agent_pb2.Hello(agent_version="test", facts=facts,
                                                            maintenance_windows=self.windows, journal=journal))
        while True:
            msg = self._out.get()
            if msg is None:
                return
            yield msg

    def reconnect(self, timeout: float = 20.0) -> None:
        """Connect again until the coordinator answers (after a restart)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.connect()
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def connect(self) -> None:
        self._out = queue.Queue()
        self.welcomed.clear()
        stub = agent_pb2_grpc.AgentServiceStub(transport.sync_channel(self.target, self.tls))
        self._call = stub.Connect(self._requests(), metadata=[("authorization", f"Bearer {self.credential}")])
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        assert self.welcomed.wait(10), f"{self.name}: no Welcome"

    def _status(self, job: agent_pb2.Job, state: str, **kw: Any) -> None:
        status = agent_pb2.JobStatus(job_id=job.job_id, deployment_id=job.deployment_id, state=state, **kw)
        self.last_status[job.job_id] = status
        self._out.put(agent_pb2.AgentMessage(job_status=status))

    def _loop(self) -> None:
        try:
            for msg in self._call:
                kind = msg.WhichOneof("kind")
                if kind == "welcome":
                    self.welcome = msg.welcome
                    self.welcomed.set()
                elif kind == "ack":
                    self.acked.add(msg.ack.job_id)
                elif kind == "cancel":
                    self.cancels.append(msg.cancel.job_id)
                elif kind == "job":
                    self._run(msg.job)
        except grpc.RpcError:
            pass

    def _run(self, job: agent_pb2.Job) -> None:
        if job.job_id in {j.job_id for j in self.jobs}:
            if job.job_id in self.last_status:  # delivered twice: runs once, status re-sent
                self._out.put(agent_pb2.AgentMessage(job_status=self.last_status[job.job_id]))
            return
        self.jobs.append(job)
        result = self.outcome(self, job)
        if result == "ignore":
            return
        self._status(job, "received")  # as the real agent: journaled first
        if result == "received":
            return
        if result == "skipped":
            self._status(job, "skipped", reason="outside_maintenance_window")
            return
        self._status(job, "downloading")
        if result == "hang":
            return
        self._status(job, "installing")
        self.executions[job.deployment_id] += 1
        if result == "completed":
            self._status(job, "completed", exit_code=0, output=f"ok from {self.name}")
        else:
            self._status(job, "failed", exit_code=3, output=f"boom on {self.name}", reason="exit code 3")

    def finish(self, job: agent_pb2.Job, state: str = "completed") -> None:
        """Finish a job left hanging (or received): its real outcome, now."""
        if state == "completed":
            self.executions[job.deployment_id] += 1
            self._status(job, "completed", exit_code=0, output=f"ok from {self.name}")
        elif state == "failed":
            self.executions[job.deployment_id] += 1
            self._status(job, "failed", exit_code=3, output=f"boom on {self.name}", reason="exit code 3")
        else:
            self._status(job, state)

    def heartbeat(self) -> None:
        self._out.put(agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat(seq=1)))

    def start_heartbeats(self, interval: float) -> threading.Event:
        """Heartbeat every `interval` seconds until the returned event is set."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                self.heartbeat()

        threading.Thread(target=beat, daemon=True).start()
        return stop

    def payload(self, job: agent_pb2.Job) -> dict[str, Any]:
        return json_format.MessageToDict(job.payload)

    def disconnect(self) -> None:
        self._out.put(None)
        if self._call is not None:
            self._call.cancel()
        if self._thread is not None:
            self._thread.join(5)


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")
