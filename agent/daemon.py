"""`convoy agent run`: connect, say hello, heartbeat, receive jobs, report — and reconnect.

One `Connect` stream at a time (docs/protocol.md). The hello carries the agent version, fresh
facts, the maintenance windows (windows.conf plus those of active policies) and every
unacknowledged status in the journal, so results survive any number of broken streams. A
broken stream is retried with fully jittered exponential backoff: the first retry after a
welcomed stream breaks anywhere in a 3 s window, then uniformly in [0, base] with base doubling
from 2 s to a 30 s cap, and never above the outage's age so far (a coordinator back after 5 s
is retried within about 5 s, not after a 16 s step). When a coordinator restarts every agent's
stream breaks at once: the window and the jitter spread their reconnects instead of a stampede. A coordinator that is
setting up as many streams as it takes refuses more with RESOURCE_EXHAUSTED and a retry hint
(`retryAfterMs`); the agent waits that long, logs it at info level (not a failure) and keeps
its backoff where it was. A stream the coordinator has not welcomed within WELCOME_TIMEOUT (60 s)
is given up and retried with the same backoff.

With several coordinator addresses (replicas, agent/servers.py), each new attempt after a failed
or broken stream goes to the next address, and the backoff grows per full round over them: an
agent whose replica died is on another one after a single short wait. One channel per address
is kept (created on first use); downloads go through the current one.

The heartbeat interval is the active policy's `heartbeatIntervalSeconds` if one sets it, else
the coordinator's (Welcome, then AgentConfig). A rejected credential stops the agent (exit 3).
SIGTERM/SIGINT: stop taking jobs, let installing jobs finish and report, close the stream, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import grpc
import grpc.aio

from agent import renewal, trust_set
from agent.download import Downloader
from agent.journal import Journal, JournalError
from agent.runner import Runner
from agent.servers import Endpoint, Rotation
from agent.state import AGENT_VERSION, AgentIdentity, StateDir
from common import transport
from common.clock import Clock, SystemClock
from common.convoy.v1 import agent_pb2, agent_pb2_grpc, types_pb2
from common.device_identity import agent_address
from common.maintenance import validate_windows

log = logging.getLogger("convoy.agent")

DEFAULT_HEARTBEAT = 30.0
RECONNECT_INITIAL = 1.0
RECONNECT_CAP = 30.0
RECONNECT_WINDOW = 3.0
"""The first reconnect after a welcomed stream broke: anywhere in this many seconds."""
RECONNECT_MIN = 0.05
WELCOME_TIMEOUT = 60.0
"""Seconds a new stream waits for the coordinator's Welcome (the hello's write and the first
read) before the attempt is given up and retried like any other. Without it, a stream that gRPC
neither answers nor fails holds the agent offline until it is restarted: seen in restart storms
of 10,000 simulated agents, where one to three agents in two runs of six were not back 200 s
later. A coordinator that is busy says so at once (RESOURCE_EXHAUSTED, the retry hint), so a
welcome this late means the attempt is lost."""
RETRY_AFTER_MAX = 60.0
"""A coordinator's retry hint is honoured up to this (it comes over the wire: bounded)."""
EXIT_UNAUTHENTICATED = 3
FLUSH_TIMEOUT = 5.0


UNREACHABLE_REWARN_S = 60.0
"""An outage in which no attempt is answered logs a warning when it starts and again every this
many seconds while it lasts; the attempts in between are info."""


def reconnect_delay(attempt: int, rng: random.Random, initial: float = RECONNECT_INITIAL,
                    cap: float = RECONNECT_CAP, window: float = RECONNECT_WINDOW,
                    outage_s: float | None = None) -> float:
    """Seconds before reconnect number `attempt` (0 = first after a healthy stream): full jitter,
    uniformly in [0, base] (at least RECONNECT_MIN), base `window` for the first, then doubling
    from 2 × `initial` up to `cap`. Full jitter rather than [base/2, base]: ten thousand agents
    whose streams broke together arrive spread over the whole window, not its second half.
    `outage_s` (seconds since the last welcomed stream ended): the base is never above it (nor
    below `window`). Failures come fast while a restarted coordinator is swamped, and doubling
    per failure alone put agents on 16-30 s steps a few seconds into a restart: the wait after
    the coordinator is back is then bounded by the time it was away, whatever the attempts."""
    base = window if attempt <= 0 else min(cap, initial * 2 ** min(attempt, 16))
    if outage_s is not None:
        base = min(base, max(window, outage_s))
    return max(RECONNECT_MIN, rng.uniform(0, base))


def answered(exc: grpc.aio.AioRpcError) -> bool:
    """Whether a failed call's status came from the coordinator: every status the coordinator
    sends carries its error code in the trailing metadata (coordinator/api/grpc_util.py). One
    without it is gRPC's own report of a connection that failed or broke before the coordinator
    answered: UNAVAILABLE, and under load CANCELLED or INTERNAL ("Internal error from Core"), even
    after the hello was written, since a write only hands the message to gRPC's buffers."""
    try:
        return any(key == "convoy-error-code" for key, _v in exc.trailing_metadata() or ())
    except (TypeError, ValueError):
        return False


def retry_hint(exc: grpc.aio.AioRpcError) -> float | None:
    """The seconds a busy coordinator asked for (RESOURCE_EXHAUSTED with `retryAfterMs` in its
    error details), bounded; None for any other error."""
    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    import json

    try:
        meta = dict(exc.trailing_metadata() or ())
        ms = json.loads(meta.get("convoy-error-details") or "{}").get("retryAfterMs")
        return min(RETRY_AFTER_MAX, max(RECONNECT_MIN, float(ms) / 1000))
    except (TypeError, ValueError, AttributeError):
        return RECONNECT_WINDOW


def gather_facts() -> types_pb2.DeviceFacts:
    from agent import facts

    f = facts.gather()
    return types_pb2.DeviceFacts(
        hostname=f.hostname, os=f.os, os_version=f.os_version, arch=f.arch, cpu_count=f.cpu_count,
        memory_bytes=f.memory_bytes, ip_addresses=f.ip_addresses,
        disks=[types_pb2.Disk(mountpoint=d.mountpoint, fstype=d.fstype, total_bytes=d.total_bytes,
                              free_bytes=d.free_bytes) for d in f.disks])


class _Rehello(Exception):
    """The windows changed: end this stream so the next hello reports them."""


class StubSource(Protocol):
    """Where `connect_loop` gets the stub of each attempt, and how it moves to the next address."""

    def __len__(self) -> int: ...

    @property
    def endpoint(self) -> object: ...

    def stub(self) -> Any: ...

    async def advance(self) -> object: ...


class Dialer:
    """A stub for the current address of a `Rotation`, one channel per endpoint."""

    def __init__(self, rotation: Rotation, tls: transport.ClientTLS) -> None:
        self.rotation = rotation
        self.tls = tls
        self.renewing = asyncio.Lock()
        """Held while the device certificate is being renewed (`Daemon._renew_loop`)."""
        self._channels: dict[Endpoint, grpc.aio.Channel] = {}
        self._stubs: dict[Endpoint, Any] = {}

    def __len__(self) -> int:
        return len(self.rotation)

    @property
    def endpoint(self) -> Endpoint:
        return self.rotation.current

    def stub(self) -> Any:
        ep = self.rotation.current
        if ep not in self._stubs:
            self._channels[ep] = transport.aio_channel(ep.target, self.tls, extra_options=ep.channel_options)
            self._stubs[ep] = agent_pb2_grpc.AgentServiceStub(self._channels[ep])
        return self._stubs[ep]

    async def advance(self) -> Endpoint:
        ep = await asyncio.to_thread(self.rotation.advance)  # may resolve names: not on the loop
        for old in [e for e in self._channels if e not in self.rotation.endpoints]:
            self._stubs.pop(old, None)  # an address no longer resolved: its channel goes
            await self._channels.pop(old).close()
        return ep

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
        self._stubs.clear()


class _CurrentStub:
    """What the downloader calls: the stub of whatever address the stream is on now."""

    def __init__(self, dialer: Dialer) -> None:
        self._dialer = dialer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dialer.stub(), name)


class Daemon:
    def __init__(self, state: StateDir, *, clock: Clock | None = None, rng: random.Random | None = None,
                 facts: Callable[[], types_pb2.DeviceFacts] = gather_facts, workers: int = 4,
                 journal: Journal | None = None, servers: list[str] | None = None) -> None:
        self.state = state
        self.servers = servers
        """Coordinator addresses for this run instead of agent.json's (`agent run --server`)."""
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.facts = facts
        self.workers = workers
        self.identity: AgentIdentity | None = None
        self.credential = ""
        self.journal = journal if journal is not None else Journal(state.journal_dir)
        self.runner: Runner | None = None
        self._stop = asyncio.Event()
        self._interval_changed = asyncio.Event()
        self._rehello = asyncio.Event()
        self._outbox: asyncio.Queue[agent_pb2.AgentMessage] | None = None
        self._coordinator_interval = DEFAULT_HEARTBEAT
        self._policy_settings: Mapping[str, Any] = {}
        self._reported_windows: list[str] = []
        self._seq = 0
        self._welcomed = False
        self.welcome_timeout = WELCOME_TIMEOUT
        self._unreachable_warned_at: datetime | None = None
        """When an attempt the coordinator never answered was last logged at warning level in
        this outage (None: not since the last welcome)."""
        self._lost_at: datetime | None = None
        """When the last welcomed stream ended (or the loop started): the outage's start."""

    # --- settings -----------------------------------------------------------------------

    @property
    def heartbeat_interval(self) -> float:
        policy = self._policy_settings.get("heartbeatIntervalSeconds")
        # A policy may make heartbeats more frequent, never rarer than the coordinator's interval:
        # the coordinator marks a device offline after 3 of *its* intervals without a message.
        return min(float(policy), self._coordinator_interval) if policy else self._coordinator_interval

    def windows(self) -> list[str]:
        """windows.conf (bad lines logged and left out) plus those of active policies."""
        windows: list[str] = []
        for line in self.state.maintenance_windows():
            try:
                windows.extend(validate_windows([line]))
            except ValueError as exc:
                log.error("windows.conf: ignoring %s", exc)
        for w in self._policy_settings.get("maintenanceWindows") or []:
            if w not in windows:
                windows.append(w)
        return windows

    def apply_settings(self, settings: Mapping[str, Any]) -> None:
        before = self.heartbeat_interval
        self._policy_settings = dict(settings)
        if self.heartbeat_interval != before:
            log.info("heartbeat interval now %gs (policy)", self.heartbeat_interval)
            self._interval_changed.set()
        if self.windows() != self._reported_windows:
            log.info("maintenance windows now %s; reconnecting to report them", self.windows() or "none")
            self._rehello.set()

    # --- reporting ----------------------------------------------------------------------

    def emit(self, status: agent_pb2.JobStatus) -> None:
        """Send a status on the live stream; with none, the journal keeps it for the hello."""
        if self._outbox is not None:
            self._outbox.put_nowait(agent_pb2.AgentMessage(job_status=status))

    def stop(self) -> None:
        if self._stop.is_set():
            log.info("already stopping; waiting for installing jobs to finish")
        self._stop.set()

    # --- main loop ----------------------------------------------------------------------

    async def run(self) -> int:
        self.identity, self.credential = self.state.load()
        for entry in self.journal.recover():
            log.warning("job %s was interrupted by an agent restart; reporting it failed", entry.job_id)
        if self.state.policy_dir.is_dir():
            # The policy installer (~0.8 MB of RSS) only on a device a policy was ever applied to.
            from agent.installers.policy import effective_settings

            self._policy_settings = effective_settings(self.state)
        metadata = (("authorization", f"Bearer {self.credential}"),)
        addresses = self.servers or self.identity.addresses
        tls = self.state.client_tls(self.identity)
        if tls.client_cert_pem is not None:
            # With a device certificate every call goes to the agent port (mutual TLS).
            addresses = [agent_address(a) for a in addresses]
        rotation = await asyncio.to_thread(Rotation, addresses)
        dialer = Dialer(rotation, tls)
        downloader = Downloader(_CurrentStub(dialer), metadata, self.state.work_dir)
        self.runner = Runner(state=self.state, journal=self.journal, device_id=self.identity.device_id,
                             emit=self.emit, fetch=downloader.fetch, windows=self.windows, clock=self.clock,
                             on_settings=self.apply_settings, workers=self.workers)
        for entry in self.journal.runnable():
            self.runner.submit(entry.job_id)
        self._install_signal_handlers()
        log.info("agent %s starting: device %s, coordinator %s, state %s", AGENT_VERSION,
                 self.identity.device_id, ",".join(addresses), self.state.root)
        renewer = asyncio.create_task(self._renew_loop(dialer, metadata), name="renew")
        try:
            code = await self.connect_loop(None, metadata, dialer)
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
            await self.runner.stop()
            await dialer.close()
        log.info("agent stopped")
        return code

    async def connect_loop(self, stub: Any, metadata: tuple[tuple[str, str], ...],
                           dialer: StubSource | None = None) -> int:
        """Keep one Connect stream up until `stop()`: reconnect with jittered backoff.
        0 when stopped, EXIT_UNAUTHENTICATED when the credential is refused. Needs `identity`
        and `runner` set (run() does that; the simulator sets its own, see agent/simulate.py).
        With a `dialer` (several addresses), `stub` is unused: each attempt after a failed or
        broken stream goes to the dialer's next address, and the backoff grows per round."""
        assert self.identity is not None
        attempt = 0
        self._lost_at = self.clock.now()
        while not self._stop.is_set():
            # Set when the coordinator welcomes the stream: a welcomed stream that later breaks
            # (the usual way a coordinator restart looks) resets the backoff, whether it ended
            # cleanly or with an error.
            self._welcomed = False
            where = str(dialer.endpoint) if dialer is not None else self.identity.server
            tls = getattr(dialer, "tls", None)
            try:
                await self._session(dialer.stub() if dialer is not None else stub, metadata)
            except _Rehello:
                continue
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED and await self._renewed_meanwhile(dialer, tls):
                    log.info("stream presented the certificate just replaced: connecting again with the new one")
                    continue
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    log.error("credential rejected: re-enroll with convoy agent install (%s)", exc.details())
                    return EXIT_UNAUTHENTICATED
                hint = retry_hint(exc)
                if hint is not None:  # busy, not broken: same address, same backoff, no warning
                    log.info("coordinator %s busy: connecting again in %.1fs", where, hint)
                    await self.clock.wait(self._stop, hint)
                    continue
                self._log_lost(where, f"{exc.code().name}: {exc.details()}", self._welcomed or answered(exc))
            except ConnectionError as exc:
                self._log_lost(where, str(exc), self._welcomed)
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if me is None or me.cancelling():
                    raise  # the agent itself is being cancelled
                # The call was cancelled under the stream, not the agent: its channel was closed
                # (a renewal closes it to present the new certificate, wherever the stream was).
                if await self._renewed_meanwhile(dialer, tls):
                    log.info("stream ended for the renewed certificate: connecting again with it")
                    continue
                self._log_lost(where, "the stream's call was cancelled", self._welcomed)
            if self._stop.is_set():
                break
            now = self.clock.now()
            if self._welcomed:
                self._unreachable_warned_at = None
                self._lost_at = now
            attempt = 0 if self._welcomed else attempt + 1
            rounds = attempt // len(dialer) if dialer is not None else attempt
            outage = (now - self._lost_at).total_seconds() if self._lost_at is not None else None
            delay = reconnect_delay(rounds, self.rng, outage_s=outage)
            if dialer is not None:
                nxt = await dialer.advance()
                log.info("reconnecting in %.1fs to %s", delay, nxt)
            else:
                log.info("reconnecting in %.1fs", delay)
            await self.clock.wait(self._stop, delay)
        return 0

    @staticmethod
    async def _renewed_meanwhile(dialer: StubSource | None, tls: object) -> bool:
        """True when a refusal may be for the certificate a renewal retired while the stream was
        starting: the coordinator retires the old certificate as it signs the new one, so a stream
        opened with the old one in that instant is refused. Waits for a renewal under way to end."""
        lock = getattr(dialer, "renewing", None)
        if lock is None:
            return False
        if lock.locked():
            async with lock:
                pass
        return getattr(dialer, "tls", None) is not tls

    def _log_lost(self, where: str, what: str, was_answered: bool) -> None:
        """A welcomed stream that broke, or a status the coordinator sent, is a warning. An attempt
        the coordinator never answered (down, restarting, swamped: see `answered`) is a warning
        when an outage starts and again every UNREACHABLE_REWARN_S while it lasts, info in
        between: a coordinator restart costs each agent one warning, not one per retry, and a
        coordinator that stays away is still reported."""
        if was_answered:
            log.warning("stream to %s lost: %s", where, what)
            return
        now = self.clock.now()
        last = self._unreachable_warned_at
        if last is None or (now - last).total_seconds() >= UNREACHABLE_REWARN_S:
            self._unreachable_warned_at = now
            since = (now - self._lost_at).total_seconds() if self._lost_at is not None else 0.0
            still = f" (unreachable for {since:.0f}s)" if last is not None else ""
            log.warning("stream to %s lost before the coordinator answered%s: %s", where, still, what)
        else:
            log.info("stream to %s lost before the coordinator answered: %s", where, what)

    async def _renew_loop(self, dialer: Dialer, metadata: tuple[tuple[str, str], ...]) -> None:
        """Renew the device certificate when it is due (agent/renewal.py), then reconnect with it."""
        assert self.identity is not None
        while not self._stop.is_set():
            wait = renewal.CHECK_EVERY_S
            if renewal.due(self.identity, self.clock.now()):
                try:
                    async with dialer.renewing:
                        dialer.tls = await renewal.renew(self.state, self.identity, dialer.stub(), metadata)
                except (grpc.aio.AioRpcError, OSError, ValueError) as exc:
                    detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else exc
                    log.warning("device certificate renewal failed (%s); retrying in 1 h", detail)
                    wait = renewal.RETRY_AFTER_S
                else:
                    log.info("device certificate renewed, valid until %s; reconnecting with it",
                             self.identity.cert_not_after)
                    await dialer.close()  # the stream ends; the next one presents the new certificate
            await self.clock.wait(self._stop, wait)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                pass

    async def _session(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> bool:
        """One Connect stream, until it breaks or the agent stops. True if it was welcomed."""
        assert self.runner is not None
        call = stub.Connect(metadata=metadata)
        self._rehello.clear()
        self._reported_windows = self.windows()
        facts = await asyncio.to_thread(self.facts)
        # The outbox opens before the journal snapshot: a status that changes in between is
        # queued for this stream rather than lost until the next reconnect.
        outbox: asyncio.Queue[agent_pb2.AgentMessage] = asyncio.Queue()
        self._outbox = outbox
        journal = self.journal.unacked_statuses()
        hello = agent_pb2.Hello(agent_version=AGENT_VERSION, facts=facts,
                                maintenance_windows=self._reported_windows, journal=journal)
        tasks: list[asyncio.Task[Any]] = []
        try:
            try:
                async with asyncio.timeout(self.welcome_timeout):
                    await self._write(call, agent_pb2.AgentMessage(hello=hello))
                    first = await call.read()
            except TimeoutError:
                raise ConnectionError(f"no welcome from the coordinator within {self.welcome_timeout:g}s") from None
            if first is grpc.aio.EOF:
                log.warning("coordinator closed the stream before welcoming")
                await self._raise_status(call)
                return False
            log.info("connected: %d unacknowledged statuses sent in the hello", len(journal))
            self._welcomed = True
            self._handle(first)
            tasks = [asyncio.create_task(self._read_loop(call), name="read"),
                     asyncio.create_task(self._write_loop(call, outbox), name="write"),
                     asyncio.create_task(self._heartbeat_loop(outbox), name="heartbeat"),
                     asyncio.create_task(self._stop.wait(), name="stop"),
                     asyncio.create_task(self._rehello.wait(), name="rehello")]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if self._stop.is_set():
                await self._close_gracefully(call, outbox, tasks)
                return True
            for task in done:
                if task.get_name() in ("read", "write") and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if self._rehello.is_set():
                await self._drain(outbox)
                raise _Rehello()
            log.warning("coordinator ended the stream")
            return True
        finally:
            self._outbox = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            call.cancel()

    async def _write(self, call: Any, msg: agent_pb2.AgentMessage) -> None:
        try:
            await call.write(msg)
        except asyncio.InvalidStateError:
            # The call already ended (e.g. the coordinator refused the credential): its status
            # says why.
            await self._raise_status(call)
            raise ConnectionError("the stream ended") from None

    async def _raise_status(self, call: Any) -> None:
        code = await call.code()
        if code != grpc.StatusCode.OK:
            raise grpc.aio.AioRpcError(code, await call.initial_metadata(), await call.trailing_metadata(),
                                       details=await call.details())

    async def _drain(self, outbox: asyncio.Queue[agent_pb2.AgentMessage]) -> None:
        try:
            await asyncio.wait_for(outbox.join(), FLUSH_TIMEOUT)
        except TimeoutError:
            log.warning("could not send %d queued messages; the journal keeps the results", outbox.qsize())

    async def _close_gracefully(self, call: Any, outbox: asyncio.Queue[agent_pb2.AgentMessage],
                                tasks: list[asyncio.Task[Any]]) -> None:
        """Stopping: let installing jobs finish and report on this stream, then close it."""
        assert self.runner is not None
        if self.runner.busy:
            log.info("stopping: waiting for installing jobs to finish")
        await self.runner.stop()
        await self._drain(outbox)
        try:
            await call.done_writing()
            reader = tasks[0]
            # Give the coordinator a moment to acknowledge the last results and end the stream.
            await asyncio.wait_for(asyncio.shield(reader), FLUSH_TIMEOUT)
        except (TimeoutError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass

    async def _read_loop(self, call: Any) -> None:
        while True:
            msg = await call.read()
            if msg is grpc.aio.EOF:
                await self._raise_status(call)
                return
            self._handle(msg)

    async def _write_loop(self, call: Any, outbox: asyncio.Queue[agent_pb2.AgentMessage]) -> None:
        while True:
            msg = await outbox.get()
            try:
                await self._write(call, msg)
            finally:
                outbox.task_done()

    async def _heartbeat_loop(self, outbox: asyncio.Queue[agent_pb2.AgentMessage]) -> None:
        while True:
            self._interval_changed.clear()
            if await self.clock.wait(self._interval_changed, self.heartbeat_interval):
                continue  # the interval changed: start a fresh wait with the new one
            self._seq += 1
            outbox.put_nowait(agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat(seq=self._seq)))

    def _handle(self, msg: agent_pb2.CoordinatorMessage) -> None:
        assert self.runner is not None
        kind = msg.WhichOneof("kind")
        if kind == "welcome":
            if self.identity and msg.welcome.device_id and msg.welcome.device_id != self.identity.device_id:
                log.warning("welcomed as device %s, enrolled as %s", msg.welcome.device_id, self.identity.device_id)
            self._set_coordinator_interval(msg.welcome.heartbeat_interval_seconds)
            if msg.welcome.HasField("trust_set"):
                t = msg.welcome.trust_set
                trust_set.apply_update(self.state, t.document, t.key_id, t.signature)
        elif kind == "job":
            self._on_job(msg.job)
        elif kind == "cancel":
            log.info("cancel requested for job %s%s", msg.cancel.job_id, f" ({msg.cancel.reason})" if msg.cancel.reason else "")
            self.runner.cancel(msg.cancel.job_id, msg.cancel.reason)
        elif kind == "ack":
            if self.journal.ack(msg.ack.job_id):
                log.info("job %s %s acknowledged", msg.ack.job_id, msg.ack.state)
            else:
                log.warning("ack for job %s (%s) ignored: not a terminal job in the journal", msg.ack.job_id, msg.ack.state)
        elif kind == "config":
            self._set_coordinator_interval(msg.config.heartbeat_interval_seconds)
        else:
            log.warning("ignoring an unknown message from the coordinator")

    def _set_coordinator_interval(self, seconds: float) -> None:
        if seconds > 0 and seconds != self._coordinator_interval:
            self._coordinator_interval = seconds
            log.info("coordinator heartbeat interval %gs%s", seconds,
                     " (overridden by policy)" if self._policy_settings.get("heartbeatIntervalSeconds") else "")
            self._interval_changed.set()

    def _on_job(self, job: agent_pb2.Job) -> None:
        assert self.runner is not None
        try:
            fresh = self.journal.record_received(job)
        except (JournalError, OSError) as exc:
            log.error("job %s cannot be journaled, not running it: %s", job.job_id, exc)
            return
        if fresh:
            log.info("job %s received: %s for deployment %s, attempt %d", job.job_id, job.type,
                     job.deployment_id, job.attempt)
            status = self.journal.status(job.job_id)
            assert status is not None
            self.emit(status)
            self.runner.submit(job.job_id)
        else:
            status = self.journal.status(job.job_id)
            assert status is not None
            log.info("job %s delivered again: already %s, not running it again", job.job_id, status.state)
            self.emit(status)


def cli_run(args: argparse.Namespace) -> int:
    from agent import introspect
    from agent.servers import parse_servers
    from common import logs

    introspect.install_from_env()

    logs.configure(str(getattr(args, "log_level", "info")), str(getattr(args, "log_format", "text")))
    servers: list[str] | None = None
    if getattr(args, "server", None):
        try:
            servers = parse_servers(args.server)
        except ValueError as exc:
            print(f"error: --server: {exc}", file=sys.stderr)
            return 2
    state = StateDir(args.state_dir)
    if not state.is_enrolled():
        print(f"error: {state.root} holds no enrollment: run `convoy agent install` first", file=sys.stderr)
        return 1
    try:
        identity = state.load()[0]
        state.client_tls(identity)  # a pinned CA or an explicit --insecure install
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if servers is None:
        try:
            servers = parse_servers(identity.addresses)
        except ValueError as exc:
            print(f"error: {state.identity_path}: {exc}; reinstall, or pass --server", file=sys.stderr)
            return 1
    return asyncio.run(Daemon(state, servers=servers).run())
