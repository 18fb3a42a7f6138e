"""Shared parts of the benchmarks: the machine, a coordinator subprocess, the simulator
subprocess, admin calls, and the figures table written to docs/BENCHMARKS.md."""

from __future__ import annotations

import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from google.protobuf import json_format

ROOT = Path(__file__).resolve().parent.parent
CONVOY = [sys.executable, "-m", "cli.main"]
PG_ADMIN_URL = os.environ.get("CONVOY_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --- the machine ----------------------------------------------------------------------------------

def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = psutil.virtual_memory().total / 2**30
    return (f"{model}, {os.cpu_count()} cores (affinity {len(os.sched_getaffinity(0))}), {ram:.1f} GiB RAM, "
            f"Linux {platform.release()}, Python {platform.python_version()}")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Result:
    """One benchmark's figures: `rows` are (figure, value, target, verdict)."""

    name: str
    workload: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def add(self, figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        verdict = "" if met is None else ("met" if met else "MISSED")
        self.rows.append((figure, value, target, verdict))

    def print(self) -> None:
        print(f"\n== {self.name} ==\n{self.workload}")
        for figure, value, target, verdict in self.rows:
            extra = f"   (target {target}: {verdict})" if target else ""
            print(f"  {figure}: {value}{extra}")
        for n in self.notes:
            print(f"  note: {n}")
        sys.stdout.flush()

    def markdown(self) -> str:
        out = [f"### {self.name}\n", f"{self.workload}\n", "| figure | value | target | |", "|---|---|---|---|"]
        out += [f"| {f} | {v} | {t} | {m} |" for f, v, t, m in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"


# --- processes ------------------------------------------------------------------------------------

class LineReader:
    """JSON lines of a subprocess's stdout, read in a thread."""

    def __init__(self, stream: Any) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                self.events.put(ev)

    def wait(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name!r} event within {timeout}s")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev.get("event") == name:
                return ev


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 30.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def py_spy(pid: int, out: Path, *, seconds: int | None = None, rate: int = 100) -> subprocess.Popen[bytes]:
    """py-spy (`pip install py-spy`; not a dependency of Convoy) recording process `pid` as raw
    stacks into `out` (idle threads left out), for `seconds` or until `py_spy_stop`."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = [spy, "record", "-p", str(pid), "-f", "raw", "--nonblocking", "-r", str(rate), "-o", str(out)]
    if seconds is not None:
        cmd += ["--duration", str(seconds)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def py_spy_stop(spy: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """End a recording early: py-spy writes its file on SIGINT."""
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    spy.wait(timeout)


class Coordinator:
    """`convoy coordinator serve` on port 0, as a real subprocess."""

    def __init__(self, data_dir: Path, db: str | None = None) -> None:
        self.data_dir = data_dir
        self.db = db
        self.ca_fingerprint = ""
        """`sha256:…` of its CA once started with TLS (what `agent install --ca-fingerprint` pins)."""
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.token = ""
        self.client_id = ""
        self.ps: psutil.Process | None = None
        self.extra: tuple[str, ...] = ()
        self.grpc_port = 0
        """The gRPC port to listen on (0: any); a restart on the same port keeps its agents' address."""
        self.insecure = True
        """False: serve TLS with the coordinator's own CA (`ca_file` once started), and the
        mutual-TLS agent port (the gRPC port + 1)."""
        self.ca_file = ""
        self.env: dict[str, str] = {}
        """Extra environment of the coordinator process."""

    def store_args(self) -> list[str]:
        # The data dir always (it holds the TLS CA even when the store is PostgreSQL): never the
        # default ./convoy-data in the working directory.
        return ["--db", self.db, "--data-dir", str(self.data_dir)] if self.db else ["--data-dir", str(self.data_dir)]

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "convoy.db"

    def bootstrap(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([*CONVOY, "admin", "bootstrap", *self.store_args(), "--client-name", "Bench",
                              "--force", "-o", "json"], capture_output=True, text=True, cwd=ROOT, check=True)
        data = json.loads(out.stdout)
        self.token, self.client_id = data["token"], data["client_id"]

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "coordinator.log", "a")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([*CONVOY, "coordinator", "serve", *self.store_args(),
                                      "--grpc-listen", f"127.0.0.1:{self.grpc_port}", "--http-listen", "127.0.0.1:0",
                                      # Plaintext on loopback: these figures are the protocol's, as before TLS.
                                      *(["--insecure"] if self.insecure else []), *self.extra],
                                     stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
                                     env={**os.environ, **self.env} if self.env else None)
        assert self.proc.stdout is not None
        reader = LineReader(self.proc.stdout)
        ev = reader.wait("listening", 60)
        self.port = int(ev["grpc_port"])
        self.ca_file = str(ev.get("ca_file") or "")
        self.ca_fingerprint = str(ev.get("ca_fingerprint") or "")
        self.ps = psutil.Process(self.proc.pid)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def trust(self) -> list[str]:
        """How an agent (or the simulator) trusts this coordinator."""
        return ["--insecure"] if self.insecure else ["--ca-fingerprint", self.ca_fingerprint]

    def cpu_seconds(self) -> float:
        assert self.ps is not None
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the replica dies mid-work, as a crashed machine would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


class Simulator:
    """`convoy agent simulate` as a subprocess."""

    def __init__(self, server: str, token: str, count: int, state_dir: Path, *extra: str, ca: str = "") -> None:
        trust = ["--ca", ca] if ca else ["--insecure"]
        self.proc = subprocess.Popen([*CONVOY, "agent", "simulate", "--server", server, "--token", token,
                                      "--count", str(count), "--state-dir", str(state_dir), *trust,
                                      "--log-level", os.environ.get("CONVOY_BENCH_SIM_LOG", "error"),
                                      *extra], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        self.reader = LineReader(self.proc.stdout)

    def wait(self, name: str, timeout: float) -> dict[str, Any]:
        try:
            return self.reader.wait(name, timeout)
        except TimeoutError:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the simulator exited with {self.proc.returncode}") from None
            raise

    def cpu_seconds(self) -> float:
        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        stop_process(self.proc, 60)


# --- admin calls ----------------------------------------------------------------------------------

class Admin:
    def __init__(self, target: str, token: str, client_id: str, ca: str = "") -> None:
        from common import transport
        from common.convoy.v1 import admin_pb2_grpc

        tls = transport.ClientTLS(ca_pem=Path(ca).read_bytes()) if ca else transport.PLAINTEXT
        self.channel = transport.sync_channel(target, tls)
        self.stub = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")]
        self.client_id = client_id

    def call(self, name: str, request: Any, timeout: float = 120.0) -> Any:
        return getattr(self.stub, name)(request, metadata=self.metadata, timeout=timeout)

    def enrollment_token(self) -> str:
        from common.convoy.v1 import admin_pb2 as pb

        return str(self.call("CreateEnrollmentToken", pb.CreateEnrollmentTokenRequest(client_id=self.client_id)).token)

    def script(self, body: str = "echo ok") -> str:
        from common.convoy.v1 import admin_pb2 as pb

        return str(self.call("CreateScript", pb.CreateScriptRequest(
            client_id=self.client_id, name=f"bench {time.monotonic_ns()}", interpreter="sh", body=body,
            rollback_body="true")).id)

    def create(self, script_id: str, batch_size: str | int | None = None) -> str:
        """A deployment of the script to every device of the client, initialized, not started."""
        from common.convoy.v1 import admin_pb2 as pb
        from common.convoy.v1 import types_pb2 as tpb

        rollout: dict[str, Any] = {"type": "immediate"}
        if batch_size is not None:
            rollout = {"type": "staggered", "staggered": {"batchSize": batch_size, "batchDelayMinutes": 0}}
        spec = json_format.ParseDict({"name": "bench", "type": "script", "clientId": self.client_id,
                                      "payload": {"scriptId": script_id, "parameters": {}},
                                      "targetType": "all", "rolloutConfig": rollout}, tpb.DeploymentSpec())
        dep = self.call("CreateDeployment", pb.CreateDeploymentRequest(spec=spec))
        self.call("InitializeDeployment", pb.DeploymentRef(id=dep.id))
        return str(dep.id)

    def start(self, dep_id: str) -> None:
        from common.convoy.v1 import admin_pb2 as pb

        self.call("StartDeployment", pb.StartDeploymentRequest(id=dep_id))

    def get(self, dep_id: str) -> Any:
        from common.convoy.v1 import admin_pb2 as pb

        return self.call("GetDeployment", pb.DeploymentRef(id=dep_id))

    def wait_done(self, dep_id: str, timeout: float, interval: float = 0.02,
                  on_poll: Callable[[Any], None] | None = None) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            d = self.get(dep_id)
            if on_poll is not None:
                on_poll(d)
            if d.status in ("completed", "failed", "paused", "cancelled"):
                return d
            if time.monotonic() > deadline:
                raise TimeoutError(f"deployment {dep_id} still {d.status} after {timeout}s: {d.progress}")
            time.sleep(interval)

    def close(self) -> None:
        self.channel.close()


def online_count(sqlite_path: Path) -> int:
    import sqlite3

    con = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, timeout=30)
    try:
        return int(con.execute("SELECT count(*) FROM devices WHERE online = 1").fetchone()[0])
    finally:
        con.close()


def wait_online(sqlite_path: Path, n: int, timeout: float = 120.0) -> float:
    started = time.monotonic()
    while online_count(sqlite_path) < n:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"only {online_count(sqlite_path)} of {n} devices online after {timeout}s")
        time.sleep(0.1)
    return time.monotonic() - started


# --- a reusable enrolled fleet --------------------------------------------------------------------

@dataclass
class FleetTemplate:
    """A coordinator data dir with `count` enrolled simulated devices and the simulator's
    credentials, so each run starts from a copy instead of enrolling again."""

    dir: Path
    count: int
    token: str
    client_id: str
    admin_token: str
    enroll_per_s: float

    def fresh(self, into: Path) -> tuple[Coordinator, Path]:
        """A copy of the template: a stopped coordinator (port 0) and the simulator state dir."""
        if into.exists():
            shutil.rmtree(into)
        shutil.copytree(self.dir, into)
        coord = Coordinator(into / "coordinator")
        coord.token, coord.client_id = self.admin_token, self.client_id
        return coord, into / "sim"


def make_template(work: Path, count: int) -> FleetTemplate:
    """Enroll `count` simulated devices once (the coordinator's port changes per run, so the
    credentials file is rewritten with a placeholder server and fixed up by `fleet_args`)."""
    tdir = work / f"template-{count}"
    if tdir.exists():
        shutil.rmtree(tdir)
    coord = Coordinator(tdir / "coordinator")
    coord.bootstrap()
    coord.start()
    try:
        admin = Admin(coord.target, coord.token, coord.client_id)
        token = admin.enrollment_token()
        admin.close()
        sim = Simulator(coord.target, token, count, tdir / "sim", "--enroll-concurrency", "64")
        try:
            ev = sim.wait("enrolled", 600)
        finally:
            sim.stop()
    finally:
        coord.stop()
    return FleetTemplate(tdir, count, token, coord.client_id, coord.token, float(ev.get("per_second") or 0))


def point_credentials(sim_dir: Path, target: str) -> None:
    """The credentials file names the server it was made for: point it at this run's port."""
    path = sim_dir / "simulated.json"
    data = json.loads(path.read_text())
    data["server"] = target
    path.write_text(json.dumps(data))


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
