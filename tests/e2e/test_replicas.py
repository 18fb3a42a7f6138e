"""(issue 10) Three `convoy coordinator serve` replicas on one PostgreSQL database, agents spread
over them (real `convoy agent run` processes and scripted devices), driven through the public
interfaces only (REST, gRPC, the CLI; the audit trail through REST); the store is read
directly only for the test's oracle of per-device run counters (`deployment_devices.runs`).

- a deployment started through replica A completes on every device, whichever replica holds it;
- `convoy deployments watch` through C follows it, and a cancel through C withdraws jobs from
  agents held by A and B;
- SIGKILL of A mid-batch, and SIGKILL of whichever replica's engine began a batch delay: the
  rollout still completes on time, each job ran once, progress equals the records.

PostgreSQL only (in CI a missing PostgreSQL fails, see tests/conftest.py). The replicas serve
plaintext on loopback (`--insecure`): TLS across replicas is covered where it is decided
(tests/e2e/test_tls.py); what is proved here is independent of the transport.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import ScriptedAgent, wait_for
from tests.harness import CONVOY, ROOT, CoordinatorProcess, pg_create_from_template, pg_drop
from tests.real_agents import RealAgent

pytestmark = pytest.mark.slow

HEARTBEAT_S = 2


@dataclass
class Replica:
    name: str
    proc: CoordinatorProcess
    http: httpx.Client = field(init=False)

    def connect_http(self, token: str) -> None:
        self.http = httpx.Client(base_url=self.proc.http_url + "/v2", timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})

    def api(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        assert r.status_code in (200, 201), f"{self.name} {method} {path}: {r.status_code} {r.text}"
        return r.json()


class Cluster:
    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        self.db = create_engine(url)
        self.replicas: dict[str, Replica] = {}
        self.scripted: dict[str, list[ScriptedAgent]] = {}
        self.real: list[RealAgent] = []
        self.mode: dict[str, str] = {}  # deployment id -> the scripted devices' outcome
        self.token = ""
        self.client_id = ""
        self.script_id = ""

    # --- setup ----------------------------------------------------------------------------------

    def start(self) -> None:
        for i, name in enumerate("abc"):
            proc = CoordinatorProcess(self.root / name, db=self.url, insecure=True,
                                      extra=("--replica-id", f"replica-{name}", "--heartbeat-interval",
                                             f"{HEARTBEAT_S}s"))
            proc.data_dir.mkdir(parents=True, exist_ok=True)
            if i == 0:
                proc.bootstrap()
                self.token, self.client_id = proc.token, proc.client_id
            proc.token, proc.client_id = self.token, self.client_id
            proc.start()
            self.replicas[name] = Replica(name, proc)
            self.replicas[name].connect_http(self.token)
        a = self.replicas["a"].proc
        enroll = a.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=self.client_id)).token
        self.script_id = a.admin().CreateScript(pb.CreateScriptRequest(
            client_id=self.client_id, name="hello", interpreter="sh", body="echo hello")).id
        for name, rep in self.replicas.items():
            agents = []
            for k in range(2):
                agent = ScriptedAgent(rep.proc.grpc_target, f"sim-{name}{k}",
                                      lambda _a, job: self.mode.get(job.deployment_id, "completed"))
                agent.enroll(enroll)
                agent.connect()
                agent.start_heartbeats(1.0)
                agents.append(agent)
            self.scripted[name] = agents
        for name in ("b", "c"):  # real agents on two replicas (never on one this test kills for good)
            real = RealAgent(self.replicas[name].proc, self.root, f"real-{name}")
            real.install(enroll)
            real.start()
            self.real.append(real)
        ids = {a.device_id for a in self.all_scripted()} | {r.device_id for r in self.real}
        wait_for(lambda: ids <= {d["id"] for d in self.replicas["c"].api(
            "GET", f"/clients/{self.client_id}/devices", params={"limit": 500})["data"] if d["online"]},
            timeout=30, what="every device online")

    def stop(self) -> None:
        for agent in self.all_scripted():
            agent.disconnect()
        for real in self.real:
            real.stop()
        for rep in self.replicas.values():
            rep.proc.stop()
        self.db.dispose()

    # --- helpers --------------------------------------------------------------------------------

    def all_scripted(self) -> list[ScriptedAgent]:
        return [a for agents in self.scripted.values() for a in agents]

    def create(self, via: str, name: str, devices: list[str] | None = None, rollout: dict[str, Any] | None = None,
               mode: str = "completed") -> str:
        spec: dict[str, Any] = {"name": name, "type": "script", "payload": {"scriptId": self.script_id},
                                "targetType": "devices" if devices else "all",
                                "rolloutConfig": rollout or {"type": "immediate"}}
        if devices:
            spec["targetConfig"] = {"deviceIds": devices}
        rep = self.replicas[via]
        dep = rep.api("POST", "/deployments", json=spec)
        rep.api("POST", f"/deployments/{dep['id']}/initialize")
        self.mode[dep["id"]] = mode
        return str(dep["id"])

    def wait_status(self, via: str, dep_id: str, statuses: set[str], timeout: float = 20) -> dict[str, Any]:
        result: dict[str, Any] = wait_for(
            lambda: (d := self.replicas[via].api("GET", f"/deployments/{dep_id}"))["status"] in statuses and d,
            timeout=timeout, interval=0.05, what=f"deployment {dep_id} to be {statuses} (via {via})")
        return result

    def runs(self, dep_id: str) -> dict[str, int]:
        with self.db.connect() as c:
            return {str(dev): int(n) for dev, n in c.execute(
                text("SELECT device_id, runs FROM deployment_devices WHERE deployment_id = :d"), {"d": dep_id})}

    def events(self, dep_id: str) -> list[Any]:
        """The audit trail (REST), through any replica that is alive."""
        rep = next(r for r in self.replicas.values() if r.proc.proc is not None and r.proc.proc.poll() is None)
        rows = rep.api("GET", f"/deployments/{dep_id}/audit", params={"limit": 500})["data"]
        return [SimpleNamespace(at=datetime.fromisoformat(e["at"].replace("Z", "+00:00")), actor=e["actor"],
                                to_status=e["toStatus"], reason=e["reason"]) for e in rows]

    def assert_progress_is_the_records(self, via: str, dep_id: str) -> dict[str, Any]:
        rep = self.replicas[via]
        dep = rep.api("GET", f"/deployments/{dep_id}")
        records = rep.api("GET", f"/deployments/{dep_id}/devices", params={"limit": 500})["data"]
        counted = {k: sum(1 for r in records if r["status"] == k) for k in ("completed", "failed", "skipped", "pending")}
        progress = dep["progress"]
        assert progress["total"] == len(records), (progress, len(records))
        assert {k: progress[k] for k in counted} == counted, (progress, counted)
        return dep

    def restart(self, name: str) -> None:
        proc = self.replicas[name].proc
        proc.start(grpc_port=proc.grpc_port, http_port=proc.http_port)
        self.replicas[name].connect_http(self.token)

    def move(self, agents: list[ScriptedAgent], to: str) -> None:
        """What a failing-over agent does (issue 10, item 4): connect to a live replica."""
        for agent in agents:
            agent.disconnect()
            agent.target = self.replicas[to].proc.grpc_target
            agent.reconnect()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, _pg_template: str | None) -> Iterator[Cluster]:
    if _pg_template is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    name = f"convoy_t_{uuid.uuid4().hex[:12]}"
    url = pg_create_from_template(name, _pg_template)
    c = Cluster(tmp_path_factory.mktemp("replicas"), url)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        pg_drop(name)


def _watch_cli(rep: Replica, dep_id: str, token: str) -> subprocess.Popen[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOY_")}
    env.update({"CONVOY_SERVER": rep.proc.grpc_target, "CONVOY_TOKEN": token, "CONVOY_INSECURE": "1"})
    return subprocess.Popen([*CONVOY, "deployments", "watch", dep_id, "-o", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def test_replica_identity_in_health_answers_and_status(cluster: Cluster) -> None:
    for name, rep in cluster.replicas.items():
        health = httpx.get(rep.proc.http_url + "/healthz").json()
        assert health == {"status": "ok", "replica": f"replica-{name}"}
        out = rep.proc.cli("coordinator", "status", "-o", "json")
        assert json.loads(out.stdout) == {"server": rep.proc.grpc_target, "status": "SERVING",
                                          "replica": f"replica-{name}"}
        assert f"[replica-{name}]" in rep.proc.log_path.read_text()  # every text log line names it


def test_started_through_a_completes_everywhere_and_watch_through_c_follows(cluster: Cluster) -> None:
    dep_id = cluster.create("a", "everywhere")
    watch = _watch_cli(cluster.replicas["c"], dep_id, cluster.token)
    sse: list[dict[str, Any]] = []

    def follow() -> None:  # REST server-sent events through C as well
        with httpx.stream("GET", cluster.replicas["c"].proc.http_url + f"/v2/deployments/{dep_id}/events",
                          headers={"Authorization": f"Bearer {cluster.token}"}, timeout=30) as r:
            for line in r.iter_lines():
                if line.startswith("data: {") and '"deployment"' in line:
                    sse.append(json.loads(line[6:]))
    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    time.sleep(1.0)  # both watchers subscribed through C before anything happens
    t0 = time.monotonic()
    cluster.replicas["a"].api("POST", f"/deployments/{dep_id}/start")
    dep = cluster.wait_status("a", dep_id, {"completed", "failed"}, timeout=20)
    elapsed = time.monotonic() - t0
    assert dep["status"] == "completed", dep
    total = len(cluster.all_scripted()) + len(cluster.real)
    assert dep["progress"]["completed"] == total
    assert elapsed < 8, f"took {elapsed:.1f}s"  # no device waited for a reconnect
    print(f"started through A, {total} devices on 3 replicas completed in {elapsed:.2f}s")
    runs = cluster.runs(dep_id)
    assert len(runs) == total and set(runs.values()) == {1}, runs
    assert all(a.executions[dep_id] == 1 for a in cluster.all_scripted())
    cluster.assert_progress_is_the_records("b", dep_id)

    out, err = watch.communicate(timeout=10)
    assert watch.returncode == 0, err  # 0: completed
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert lines[0]["deployment"]["status"] == "pending" and lines[-1]["deployment"]["status"] == "completed"
    reader.join(10)
    assert sse and sse[-1]["deployment"]["status"] == "completed", sse[-1:] or "no events"
    for name in ("b", "c"):  # they heard A (and each other) through PostgreSQL
        metrics = httpx.get(cluster.replicas[name].proc.http_url + "/metrics").text
        assert _metric(metrics, "convoy_signals_listening") == 1
        assert _metric(metrics, "convoy_signals_received_total") >= 1


def _metric(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not served")


def test_cancel_through_c_withdraws_from_agents_on_a_and_b(cluster: Cluster) -> None:
    targets = cluster.scripted["a"] + cluster.scripted["b"]
    dep_id = cluster.create("a", "to-cancel", devices=[a.device_id for a in targets], mode="ignore")
    admin_c = cluster.replicas["c"].proc.admin()
    stream = admin_c.stub.WatchDeployment(pb.DeploymentRef(id=dep_id), metadata=admin_c.metadata, timeout=30)
    seen: list[str] = []
    threading.Thread(target=lambda: seen.extend(ev.deployment.status for ev in stream), daemon=True).start()
    cluster.replicas["a"].api("POST", f"/deployments/{dep_id}/start")
    wait_for(lambda: all(any(j.deployment_id == dep_id for j in a.jobs) for a in targets), timeout=10,
             what="every targeted device holding its (unacknowledged) job")
    t0 = time.monotonic()
    cluster.replicas["c"].api("POST", f"/deployments/{dep_id}/cancel")
    jobs = {a.name: next(j.job_id for j in a.jobs if j.deployment_id == dep_id) for a in targets}
    wait_for(lambda: all(jobs[a.name] in a.cancels for a in targets), timeout=5,
             what="the withdrawal on every replica's agents")
    took = time.monotonic() - t0
    assert took < 3
    print(f"cancel through C reached the agents on A and B in {took:.2f}s")
    dep = cluster.wait_status("a", dep_id, {"cancelled"})
    assert dep["progress"]["skipped"] == len(targets)
    wait_for(lambda: seen and seen[-1] == "cancelled", timeout=5, what="watch through C to end cancelled")
    assert set(cluster.runs(dep_id).values()) == {0}
    cluster.assert_progress_is_the_records("c", dep_id)


def _staggered(delay_minutes: float) -> dict[str, Any]:
    return {"type": "staggered", "staggered": {"batchSize": 2, "batchDelayMinutes": delay_minutes}}


def _due_at(waiting: Any) -> datetime:
    """The next batch's due time, as the engine wrote it in the audit row ("... next at <time>")."""
    return _utc(datetime.fromisoformat(waiting.reason.rsplit("next at ", 1)[1]))


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # stored as naive UTC


def _batch_starts(events: list[Any]) -> list[tuple[datetime, str]]:
    return [(_utc(ev.at), ev.actor) for ev in events if "started" in (ev.reason or "") and ev.reason.startswith("batch ")]


def test_sigkill_of_the_starting_replica_mid_batch_costs_nothing(cluster: Cluster) -> None:
    targets = cluster.scripted["b"] + cluster.scripted["c"]
    dep_id = cluster.create("a", "kill-a", devices=[a.device_id for a in targets], rollout=_staggered(0.05),
                            mode="hang")
    cluster.replicas["a"].api("POST", f"/deployments/{dep_id}/start")
    first = wait_for(lambda: len(held := [a for a in targets if any(j.deployment_id == dep_id for j in a.jobs)]) == 2
                     and held, timeout=10, what="batch 1 (two devices) running")
    time.sleep(0.3)
    assert len([a for a in targets if any(j.deployment_id == dep_id for j in a.jobs)]) == 2  # batch 2 not out
    cluster.replicas["a"].proc.kill()  # mid-batch: its agents are elsewhere, its engine is gone
    try:
        cluster.mode[dep_id] = "completed"  # batch 2 runs through by itself
        for agent in first:
            agent.finish(next(j for j in agent.jobs if j.deployment_id == dep_id))
        dep = cluster.wait_status("b", dep_id, {"completed", "failed"}, timeout=20)
        assert dep["status"] == "completed" and dep["progress"]["completed"] == 4, dep
        starts = _batch_starts(cluster.events(dep_id))
        # Batch 1 was started by whichever engine claimed the deployment first (A's, poked by the
        # start, or one woken by A's signal); batch 2 by a survivor.
        assert len(starts) == 2 and starts[0][1].startswith("engine@replica-"), starts
        assert starts[1][1] in ("engine@replica-b", "engine@replica-c"), starts
        waits = [ev for ev in cluster.events(dep_id) if ev.to_status == "running"]
        assert waits, "batch 1 done, waiting for the delay"
        late = (starts[1][0] - _due_at(waits[0])).total_seconds()
        assert -0.05 < late < 1.5, f"batch 2 started {late:+.2f}s after its due time"
        print(f"A killed mid-batch (batch 1 started by {starts[0][1]}): batch 2 started by {starts[1][1]} "
              f"{late:+.2f}s after its due time")
        runs = cluster.runs(dep_id)
        assert set(runs.values()) == {1}, runs
        assert all(a.executions[dep_id] == 1 for a in targets)
        cluster.assert_progress_is_the_records("c", dep_id)
    finally:
        cluster.restart("a")
        cluster.move(cluster.scripted["a"], "a")


def test_sigkill_of_the_replica_holding_the_batch_delay_costs_nothing(cluster: Cluster) -> None:
    targets = cluster.all_scripted()
    dep_id = cluster.create("a", "kill-the-timer", devices=[a.device_id for a in targets], rollout=_staggered(0.05))
    cluster.replicas["a"].api("POST", f"/deployments/{dep_id}/start")
    waiting = wait_for(lambda: [ev for ev in cluster.events(dep_id) if ev.to_status == "running"], timeout=10,
                       what="batch 1 done, the delay begun")[0]
    holder = waiting.actor.removeprefix("engine@replica-")
    assert holder in cluster.replicas, waiting.actor
    cluster.replicas[holder].proc.kill()  # the replica whose engine stored the delay's end
    survivor = next(n for n in cluster.replicas if n != holder)
    try:
        cluster.move(cluster.scripted[holder], survivor)
        dep = cluster.wait_status(survivor, dep_id, {"completed", "failed"}, timeout=30)
        assert dep["status"] == "completed" and dep["progress"]["completed"] == len(targets), dep
        events = cluster.events(dep_id)
        starts = _batch_starts(events)
        assert len(starts) == 3, starts
        assert starts[1][1] != f"engine@replica-{holder}", starts
        late = (starts[1][0] - _due_at(waiting)).total_seconds()
        assert -0.05 < late < 1.5, f"batch 2 started {late:+.2f}s after its due time"
        print(f"timer holder {holder} killed: batch 2 started by {starts[1][1]} {late:+.2f}s after its due time")
        runs = cluster.runs(dep_id)
        assert len(runs) == len(targets) and set(runs.values()) == {1}, runs
        assert all(a.executions[dep_id] == 1 for a in targets)
        cluster.assert_progress_is_the_records(survivor, dep_id)
    finally:
        cluster.restart(holder)
        cluster.move(cluster.scripted[holder], holder)

