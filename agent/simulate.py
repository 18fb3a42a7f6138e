"""`convoy agent simulate`: N agents in one process, speaking the real AgentService protocol.

Each simulated agent is the real daemon (`agent.daemon.Daemon`: hello, Connect loop, heartbeats,
job and ack handling, jittered reconnect) and the real job runner (`agent.runner.Runner`: the
journal's state machine, maintenance windows, cancels), with two parts swapped for memory:

- `MemoryJournal`: the journal's rules without files (no write/fsync/rename per state);
- `SimRunner`: the install step sleeps `install_time` and fails with `failure_rate` instead of
  running an installer.

Every agent enrolls with its own credential (one Enroll carrying its success report, a bounded number at a
time) and holds its own Connect stream; the streams are spread over `channels` gRPC channels and
opened in waves (grpc.aio fails most streams opened in one burst of thousands; measured on a
2-core machine: 2,000 streams opened at once mostly end in `INTERNAL`, 10,000 opened a hundred at
a time with a 10 ms pause all work). Each channel is its own TCP connection (`own_channel`).
With `--state-dir`, credentials are kept in `simulated.json` and reused by the next run against
the same coordinator (an enrollment of a machine id that is already a device would be refused
without its credential).

Several replicas (`--server a:7443,b:7443`, docs/replicas.md): `--channels` channels per address
(a channel connects on first use, so an address no agent has needed yet holds no connection).
Like the real agent, each agent starts on the first address and moves to the next one (on a
channel of that address) when its stream cannot be opened or breaks; with `--spread`, agent i
starts on address i mod n instead. Stats lines then carry `by_server` too.

Every stats line carries `streams` (agents on a live stream now), `errors` (streams that ended or
could not be opened, by gRPC status code) and `repeated` (jobs a device ran a second time: the
per-device run counter behind "every job ran exactly once", bench/storm.py).

The process prints JSON lines on stdout: `enrolled`, `connected`, then `stats` every
`--stats-interval` seconds, and `stopped` after SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import random
import signal
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio

from agent.daemon import Daemon, StubSource, answered
from agent.installers import JobContext, Outcome
from agent.journal import Journal, JournalEntry
from agent.runner import Runner
from agent.state import AGENT_VERSION, AgentIdentity, StateDir, atomic_write
from common import transport
from common.clock import Clock, SystemClock, utcnow
from common.convoy.v1 import agent_pb2, agent_pb2_grpc, types_pb2
from common.maintenance import validate_windows

log = logging.getLogger("convoy.simulate")

T = TypeVar("T")

CREDENTIALS_FILE = "simulated.json"
UNANSWERED = " before the coordinator answered"
"""The suffix of an error code counted for an attempt the coordinator never answered."""
BROKEN = " on a welcomed stream that broke"
"""The suffix of an error code counted for a welcomed stream whose connection broke."""
MULTI_SERVER = True
"""`--server` takes several addresses and simulated agents fail over between them."""

# gRPC shares one connection (subchannel) between channels to the same target with the same
# options: without this, "8 channels" would be one HTTP/2 connection (seen with `ss -tn`).
OWN_CONNECTION = ("grpc.use_local_subchannel_pool", 1)


def own_channel(target: str, tls: transport.ClientTLS) -> grpc.aio.Channel:
    """A channel with a TCP connection of its own (a local subchannel pool), so N channels are N
    connections, as N devices' agents would be."""
    return transport.aio_channel(target, tls, extra_options=[OWN_CONNECTION])


@dataclass
class Counters:
    """What the simulated fleet did, for the periodic `stats` line."""

    welcomed: int = 0
    jobs: int = 0
    completed: int = 0
    failed: int = 0
    acked: int = 0
    by_server: dict[str, int] = field(default_factory=dict)
    """Agents on a live (welcomed) stream now, per coordinator address."""
    errors: dict[str, int] = field(default_factory=dict)
    """Streams that ended or could not be opened, by gRPC status code (or `connection`)."""
    repeated: int = 0
    """Jobs an agent ran again (the same job id, any attempt): each device runs a job once."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"welcomed": self.welcomed, "jobs": self.jobs, "completed": self.completed,
                               "failed": self.failed, "acked": self.acked, "repeated": self.repeated,
                               "streams": sum(self.by_server.values()), "errors": dict(self.errors)}
        if len(self.by_server) > 1:
            out["by_server"] = dict(self.by_server)
        return out


class MemoryJournal(Journal):
    """The journal's state machine and rules (agent/journal.py), kept in memory only."""

    def __init__(self, now: Callable[[], datetime] = utcnow) -> None:  # noqa: D107 - no directory
        self.dir = Path("/nonexistent")
        self._now = now
        self._lock = threading.RLock()
        self._cache: dict[str, JournalEntry] = {}

    def _write(self, entry: JournalEntry) -> None:
        entry.updated_at = self._now().isoformat()
        self._cache[entry.job_id] = entry


class SimRunner(Runner):
    """The real runner with the install step replaced: sleep, then succeed or fail by chance."""

    def __init__(self, *, install_time: float, failure_rate: float, rng: random.Random, counters: Counters,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.install_time = install_time
        self.failure_rate = failure_rate
        self.rng = rng
        self.counters = counters
        self.ran: set[str] = set()
        """The job ids this device ran (its per-device run counter: `repeated` counts a second run)."""

    async def _install(self, installer: Callable[[JobContext], Outcome], ctx: JobContext) -> Outcome:
        self.counters.jobs += 1
        if ctx.job_id in self.ran:
            self.counters.repeated += 1
        self.ran.add(ctx.job_id)
        await asyncio.sleep(self.install_time)
        if self.rng.random() < self.failure_rate:
            self.counters.failed += 1
            return Outcome(False, 1, "simulated failure\n", "exit code 1")
        self.counters.completed += 1
        return Outcome(True, 0, "ok\n")


async def _no_fetch(sha256: str, size: int | None) -> Path:
    from agent.download import DownloadError

    raise DownloadError("the simulator downloads no artifacts")


class SimAgent(Daemon):
    """One simulated device: the daemon's protocol code over an in-memory journal and runner."""

    def __init__(self, *, identity: AgentIdentity, credential: str, state: StateDir, windows: list[str],
                 facts: types_pb2.DeviceFacts, install_time: float, failure_rate: float, rng: random.Random,
                 counters: Counters, clock: Clock) -> None:
        super().__init__(state, clock=clock, rng=rng, facts=lambda: facts, journal=MemoryJournal(), workers=1)
        self.identity = identity
        self.credential = credential
        self.counters = counters
        self._windows = windows
        self.welcomed = asyncio.Event()
        self.runner = SimRunner(install_time=install_time, failure_rate=failure_rate, rng=rng, counters=counters,
                                state=state, journal=self.journal, device_id=identity.device_id, emit=self.emit,
                                fetch=_no_fetch, windows=self.windows, clock=clock, workers=1)

        self.on = ""
        """The address of the live stream, while there is one."""
        self._address = identity.server

    def windows(self) -> list[str]:
        return self._windows

    def _handle(self, msg: agent_pb2.CoordinatorMessage) -> None:
        kind = msg.WhichOneof("kind")
        if kind == "welcome":
            if not self.welcomed.is_set():
                self.welcomed.set()
                self.counters.welcomed += 1
            self.on = self._address
            self.counters.by_server[self.on] = self.counters.by_server.get(self.on, 0) + 1
        elif kind == "ack":
            self.counters.acked += 1
        super()._handle(msg)

    async def _session(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> bool:
        try:
            return await super()._session(stub, metadata)
        except grpc.aio.AioRpcError as exc:
            self._count_error(exc.code().name, answered(exc))
            raise
        except ConnectionError:
            self._count_error("connection", False)
            raise
        finally:
            if self.on:
                self.counters.by_server[self.on] -= 1
                self.on = ""

    def _count_error(self, code: str, from_coordinator: bool) -> None:
        # Three kinds, counted apart: a status the coordinator sent (its own code), a welcomed
        # stream whose connection broke (gRPC's status: UNAVAILABLE, or INTERNAL for a write the
        # broken transport had already ended, grpc/grpc#36066), and an attempt the coordinator
        # never answered (down, restarting, swamped; agent/daemon.py `answered`).
        if from_coordinator:
            key = code
        elif self._welcomed:
            key = f"{code}{BROKEN}"
        else:
            key = f"{code}{UNANSWERED}"
        self.counters.errors[key] = self.counters.errors.get(key, 0) + 1

    async def serve(self, stub: Any, dialer: SharedStubs | None = None) -> int:
        metadata = (("authorization", f"Bearer {self.credential}"),)
        try:
            if dialer is not None:
                dialer.agent = self
                self._address = dialer.endpoint
            return await self.connect_loop(stub, metadata, dialer)
        finally:
            assert self.runner is not None
            await self.runner.stop()


class SharedStubs(StubSource):
    """One simulated agent's addresses, each a stub on a channel shared with other agents."""

    __slots__ = ("_stubs", "_i", "agent")

    def __init__(self, stubs: list[tuple[str, Any]]) -> None:
        self._stubs = stubs
        self._i = 0
        self.agent: SimAgent | None = None

    def __len__(self) -> int:
        return len(self._stubs)

    @property
    def endpoint(self) -> str:
        return self._stubs[self._i][0]

    def stub(self) -> Any:
        return self._stubs[self._i][1]

    async def advance(self) -> str:
        self._i = (self._i + 1) % len(self._stubs)
        if self.agent is not None:
            self.agent._address = self.endpoint
        return self.endpoint


# --- enrollment ---------------------------------------------------------------------------------

@dataclass
class Enrolled:
    device_id: str
    client_id: str
    machine_id: str
    credential: str


def sim_facts(name: str) -> types_pb2.DeviceFacts:
    return types_pb2.DeviceFacts(hostname=name, os="linux", os_version="12", arch="x86_64", cpu_count=2,
                                 memory_bytes=2 << 30, ip_addresses=["127.0.0.1"])


async def enroll_one(stub: Any, token: str, machine_id: str, keys: transport.ClientTLS | None = None,
                     agent_target: str = "") -> Enrolled:
    """Enroll with its success report, as `convoy agent install --no-service` does, minus the
    local steps. With `keys` (the coordinator's trust), a device key is made and sent as a
    certificate request. Against a coordinator that predates `report_success` the report is a
    ReportEnrollment call, over mutual TLS with the certificate to `agent_target` on a connection
    of its own when there is one, as a real install's is."""
    request = agent_pb2.EnrollRequest(token=token, machine_id=machine_id, facts=sim_facts(machine_id),
                                      agent_version=AGENT_VERSION, report_success=True)
    key = None
    if keys is not None:
        from agent.device_key import DeviceKey

        key = DeviceKey.generate()
        request.csr = key.csr(machine_id)
    resp = await _retrying(lambda: stub.Enroll(request, timeout=60))
    if resp.reported:  # the report went with Enroll, as a `--no-service` install's does
        return Enrolled(resp.device_id, resp.client_id, machine_id, resp.credential)
    report = agent_pb2.ReportEnrollmentRequest(enrollment_id=resp.enrollment_id, success=True,
                                               log_lines=["simulated install"])
    metadata = (("authorization", f"Bearer {resp.credential}"),)
    # Retried on its own: enrolling again would be refused (the machine id is a device now).
    if key is None or keys is None or not resp.device_certificate:
        await _retrying(lambda: stub.ReportEnrollment(report, metadata=metadata, timeout=60))
    else:
        tls = transport.ClientTLS(ca_pem=keys.ca_pem, client_key_pem=key.pem,
                                  client_cert_pem=resp.device_certificate.encode())
        async with own_channel(agent_target, tls) as channel:
            agent_stub = agent_pb2_grpc.AgentServiceStub(channel)
            await _retrying(lambda: agent_stub.ReportEnrollment(report, metadata=metadata, timeout=60))
    return Enrolled(resp.device_id, resp.client_id, machine_id, resp.credential)


async def _retrying(call: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """`call()`, again after a pause while it fails with UNAVAILABLE (a coordinator busy or
    restarting), as the installer retries."""
    for attempt in range(attempts):
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


async def enroll_many(server: str, tls: transport.ClientTLS, token: str, machine_ids: Sequence[str], *,
                      concurrency: int = 32, channels: int = 4, device_keys: bool = False) -> list[Enrolled]:
    """Enroll every machine id, `concurrency` at a time, over a few channels (through the first
    address of a `a:7443,b:7443` list: every replica shares one database). `device_keys`: each
    with a key and certificate (see `enroll_one`)."""
    from agent.servers import parse_servers
    from common.device_identity import agent_address

    server = parse_servers(server)[0]
    chans = [own_channel(server, tls) for _ in range(max(1, channels))]
    stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in chans]
    gate = asyncio.Semaphore(concurrency)
    keys = tls if device_keys and tls.secure else None

    async def one(i: int, machine_id: str) -> Enrolled:
        async with gate:
            return await enroll_one(stubs[i % len(stubs)], token, machine_id, keys, agent_address(server))

    try:
        return list(await asyncio.gather(*(one(i, mid) for i, mid in enumerate(machine_ids))))
    finally:
        for c in chans:
            await c.close()


def load_credentials(state_dir: Path | None, server: str) -> list[Enrolled]:
    if state_dir is None or not (state_dir / CREDENTIALS_FILE).exists():
        return []
    data = json.loads((state_dir / CREDENTIALS_FILE).read_text())
    if data.get("server") != server:
        return []
    return [Enrolled(**a) for a in data.get("agents", [])]


def save_credentials(state_dir: Path, server: str, agents: Sequence[Enrolled]) -> None:
    body = {"server": server, "agents": [a.__dict__ for a in agents]}
    atomic_write(state_dir / CREDENTIALS_FILE, json.dumps(body).encode(), mode=0o600)


# --- the fleet ----------------------------------------------------------------------------------

@dataclass
class FleetConfig:
    server: str
    """The coordinator's gRPC address, HOST:PORT."""
    token: str
    """An enrollment token with at least `count` uses left (unless credentials are reused)."""
    count: int
    """How many agents to simulate."""
    tls: transport.ClientTLS
    """How the coordinator is trusted (a pinned CA, or plaintext for `--insecure`)."""
    channels: int = 8
    """gRPC channels the streams are spread over, each its own TCP (HTTP/2) connection (that many
    per address when `server` lists several)."""
    install_time: float = 0.0
    """Seconds each install step takes."""
    failure_rate: float = 0.0
    """Probability (0..1) that an install fails (exit code 1)."""
    windows: list[str] = field(default_factory=list)
    """Maintenance windows every agent reports."""
    state_dir: Path | None = None
    """Where credentials are kept for the next run; None: enroll afresh, keep nothing."""
    wave: int = 100
    """Streams opened per wave."""
    wave_pause: float = 0.01
    """Seconds between waves."""
    enroll_concurrency: int = 32
    device_keys: bool = False
    """Enroll each agent with a device key and certificate (the enrollment cost with mutual TLS).
    Its streams then cannot share connections, so this fleet only enrolls and holds no streams."""
    """Enrollments in flight at once."""
    seed: int | None = None
    """Random seed (failures, backoff jitter)."""
    spread: bool = False
    """With several addresses: agent i starts on address i mod n (else every agent on the first)."""


class Fleet:
    def __init__(self, cfg: FleetConfig, emit: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.cfg = cfg
        self.counters = Counters()
        self.agents: list[SimAgent] = []
        self._tasks: list[asyncio.Task[int]] = []
        self._channels: list[grpc.aio.Channel] = []
        self._emit = emit or (lambda _e: None)
        self.rng = random.Random(cfg.seed)

    async def enroll(self) -> list[Enrolled]:
        cfg = self.cfg
        have = load_credentials(cfg.state_dir, cfg.server)[:cfg.count]
        missing = cfg.count - len(have)
        started = time.monotonic()
        if missing > 0:
            prefix = f"sim-{uuid.uuid4().hex[:8]}"
            fresh = await enroll_many(cfg.server, cfg.tls, cfg.token, [f"{prefix}-{i:06d}" for i in range(missing)],
                                      concurrency=cfg.enroll_concurrency, device_keys=cfg.device_keys)
            have = have + fresh
            if cfg.state_dir is not None:
                everything = load_credentials(cfg.state_dir, cfg.server)
                save_credentials(cfg.state_dir, cfg.server, have + everything[len(have):])
        seconds = time.monotonic() - started
        self._emit({"event": "enrolled", "count": len(have), "new": max(0, missing), "seconds": round(seconds, 3),
                    "per_second": round(missing / seconds, 1) if missing > 0 and seconds > 0 else None})
        return have

    async def connect(self, enrolled: Sequence[Enrolled]) -> None:
        """Open every agent's stream, a wave at a time, each wave welcomed before the next."""
        cfg = self.cfg
        clock = SystemClock()
        state = StateDir(cfg.state_dir or "/nonexistent-convoy-sim")
        windows = validate_windows(cfg.windows) if cfg.windows else []
        from agent.servers import parse_servers

        servers = parse_servers(cfg.server)
        if len(servers) > 1:
            self.counters.by_server = dict.fromkeys(servers, 0)
        per = max(1, cfg.channels)
        # A coordinator takes at most MAX_STREAMS_PER_CONNECTION streams on one connection (real
        # agents hold one each): a fleet larger than the channels can carry gets more channels,
        # or every agent past the cap would wait, unwelcomed, for a stream slot forever.
        needed = -(-len(enrolled) // (transport.MAX_STREAMS_PER_CONNECTION * 9 // 10))
        if needed > per:
            log.info("%d agents need %d channels (at most %d streams per connection); opening %d instead of %d",
                     len(enrolled), needed, transport.MAX_STREAMS_PER_CONNECTION, needed, per)
            per = needed
        # stubs[s][k]: channel k of address s
        stubs: list[list[Any]] = []
        for server in servers:
            chans = [own_channel(server, cfg.tls) for _ in range(per)]
            self._channels.extend(chans)
            stubs.append([agent_pb2_grpc.AgentServiceStub(c) for c in chans])
        routes: dict[tuple[int, int], list[tuple[str, Any]]] = {}
        started = time.monotonic()
        for start in range(0, len(enrolled), cfg.wave):
            wave: list[SimAgent] = []
            for i in range(start, min(start + cfg.wave, len(enrolled))):
                e = enrolled[i]
                identity = AgentIdentity(server=cfg.server, device_id=e.device_id, client_id=e.client_id,
                                         machine_id=e.machine_id)
                agent = SimAgent(identity=identity, credential=e.credential, state=state, windows=windows,
                                 facts=sim_facts(e.machine_id), install_time=cfg.install_time,
                                 failure_rate=cfg.failure_rate, rng=random.Random(self.rng.random()),
                                 counters=self.counters, clock=clock)
                wave.append(agent)
                n, k = len(servers), (i // len(servers)) % per
                if n == 1:
                    self._tasks.append(asyncio.create_task(agent.serve(stubs[0][i % per])))
                else:
                    home = i % n if cfg.spread else 0
                    route = routes.get((home, k))
                    if route is None:  # shared by every agent with this start and channel
                        route = routes[(home, k)] = [(servers[(home + j) % n], stubs[(home + j) % n][k])
                                                     for j in range(n)]
                    self._tasks.append(asyncio.create_task(agent.serve(None, SharedStubs(route))))
            self.agents.extend(wave)
            try:
                await asyncio.wait_for(asyncio.gather(*(a.welcomed.wait() for a in wave)), 30)
            except TimeoutError:
                log.warning("wave at %d: not every agent was welcomed within 30s", start)
            await asyncio.sleep(cfg.wave_pause)
        # Tens of thousands of long-lived objects (agents, streams, tasks): move them out of the
        # cyclic collector's reach, or every full collection walks them all (it showed in
        # profiles as a quarter of the fan-out's time in whatever line happened to allocate).
        gc.collect()
        gc.freeze()
        self._emit({"event": "connected", "count": self.counters.welcomed,
                    "seconds": round(time.monotonic() - started, 3)})

    async def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for c in self._channels:
            await c.close()


async def simulate(cfg: FleetConfig, stats_interval: float = 1.0, stop: asyncio.Event | None = None) -> int:
    def emit(event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    fleet = Fleet(cfg, emit)
    try:
        enrolled = await fleet.enroll()
        if not cfg.device_keys:
            await fleet.connect(enrolled)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), stats_interval)
            except TimeoutError:
                emit({"event": "stats", **fleet.counters.as_dict()})
    finally:
        await fleet.stop()
    emit({"event": "stopped", **fleet.counters.as_dict()})
    return 0


def cli_simulate(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not 0.0 <= args.failure_rate <= 1.0:
        print("error: --failure-rate must be between 0 and 1", file=sys.stderr)
        return 2
    if args.count < 1:
        print("error: --count must be at least 1", file=sys.stderr)
        return 2
    try:
        windows = validate_windows(args.window)
    except ValueError as exc:
        print(f"error: --window: {exc}", file=sys.stderr)
        return 2
    state_dir = Path(args.state_dir).expanduser().resolve() if args.state_dir else None
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
    from agent.install import install_trust
    from common.exits import CliError

    try:
        tls = install_trust(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    cfg = FleetConfig(server=args.server, token=args.token, count=args.count, tls=tls, channels=args.channels,
                      install_time=args.install_time, failure_rate=args.failure_rate, windows=windows,
                      state_dir=state_dir, wave=args.wave, wave_pause=args.wave_pause,
                      enroll_concurrency=args.enroll_concurrency, seed=args.seed, spread=args.spread,
                      device_keys=args.device_keys)
    try:
        return asyncio.run(simulate(cfg, args.stats_interval))
    except grpc.aio.AioRpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
