"""Live agent connections: who is online, and the way jobs, cancels and acks reach agents.

Presence is written in batches like reports: hellos (facts, windows, online), heartbeats
(last_seen_at) and disconnects (offline) queue up and are written in one transaction per tick
(IN lists chunked). A device is online while its stream lives; it is marked offline when the
stream ends, or when it misses `offline_after_missed` heartbeats (one sweep over the live
connections per heartbeat interval, plus one set-based UPDATE for devices whose coordinator
died). The heartbeat write is one statement per tick whatever the fleet's size: every row a
hello of this replica wrote since it started (`replica_id`, `connected_at`; `Hub.heartbeat_write`),
so a device whose stream ended (its offline write clears the row's connection and replica ids),
one that moved to another replica, or one a previous run of this replica id left is never
written back to online, and a device another replica's sweep took offline while this replica
could not write (a store outage longer than the offline limit) is online again with the next
heartbeat write. A presence write that fails (store locked, PostgreSQL
restarting) puts its hellos and disconnects back in the queue: nothing is forgotten.

Connection epochs (several replicas on one store, docs/replicas.md): every stream gets a random
id and the time it was accepted. A hello writes both on the device row, unless the row already
holds a stream accepted later (a hello flushed late on one replica never overwrites the reconnect
on another). A disconnect applies only while the row still holds *that*
stream (`WHERE connection_id IN (...)`: the ids are unique, so with the device ids this is a
per-device guard in one chunked statement), so a late disconnect on the replica an agent left
cannot mark it offline after it reconnected elsewhere. The sweep for devices whose coordinator
died rechecks its condition in the UPDATE itself (online and silent too long), so a hello written
by another replica between its SELECT and its UPDATE wins; it leaves the row's connection id, so
the stream that holds it (if it lives after all) revives it with its next heartbeat.

Delivery: what each agent should be doing is stored per job (engine/rollout.py `device_jobs`).
When a device connects, its hello is written and its whole desired state sent (jobs to run,
withdrawals not yet acknowledged); afterwards the engine sends each change after committing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import json_format, struct_pb2
from sqlalchemy import bindparam, or_, select, update

from common.convoy.v1 import agent_pb2
from common.maintenance import parse_window
from coordinator.app import App
from coordinator.engine import rollout
from coordinator.engine.rollout import Dispatch
from coordinator.service import secret_params
from coordinator.store import models as m
from coordinator.store.inlist import chunks
from coordinator.store.sealing import SealError

log = logging.getLogger("convoy.hub")


@dataclass(eq=False)
class Connection:
    device_id: str
    queue: asyncio.Queue[agent_pb2.CoordinatorMessage | None] = field(default_factory=asyncio.Queue)
    """Messages for the agent; None ends the stream's writer."""
    last_seen: float = field(default_factory=time.monotonic)
    closed: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """This stream's connection id, written on the device row by its hello."""
    accepted_at: datetime | None = None
    """When the stream was accepted (the store's ordering of a device's streams)."""
    refusal: str = ""
    """Set when the device was revoked: the stream ends with UNAUTHENTICATED and this message."""

    def close(self, refusal: str = "") -> None:
        self.refusal = self.refusal or refusal
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


# A deployment's job payload is frozen at initialize, so its protobuf form is built once per
# deployment, not once per job (at 10,000 jobs, ParseDict per job was a visible share of fan-out).
_PAYLOADS: OrderedDict[str, struct_pb2.Struct] = OrderedDict()
_PAYLOAD_CACHE_SIZE = 256


def _payload_struct(job: Dispatch, store_info: dict[str, Any]) -> struct_pb2.Struct:
    cached = _PAYLOADS.get(job.deployment_id)
    if cached is None:
        cached = struct_pb2.Struct()
        # Secret parameters are decrypted here, into the job only (service/secret_params.py).
        json_format.ParseDict(secret_params.reveal(store_info, job.payload), cached)
        _PAYLOADS[job.deployment_id] = cached
        if len(_PAYLOADS) > _PAYLOAD_CACHE_SIZE:
            _PAYLOADS.popitem(last=False)
    return cached


def job_message(job: Dispatch, store_info: dict[str, Any]) -> agent_pb2.CoordinatorMessage:
    payload = _payload_struct(job, store_info)
    sig = job.signature or {}
    return agent_pb2.CoordinatorMessage(job=agent_pb2.Job(
        job_id=job.job_id, deployment_id=job.deployment_id, attempt=job.attempt, type=job.type, payload=payload,
        respect_maintenance_windows=job.respect_windows, timeout_seconds=job.timeout_seconds, rollback=job.rollback,
        window_wait_max_seconds=job.window_wait_max_seconds,
        manifest=sig.get("manifest", ""), signature_key_id=sig.get("keyId", ""), signature=sig.get("value", "")))


@dataclass
class _Hello:
    device_id: str
    facts: dict[str, Any]
    windows: list[str]
    agent_version: str
    conn: Connection


class Hub:
    def __init__(self, app: App) -> None:
        self.app = app
        self.connections: dict[str, Connection] = {}
        self._hellos: list[_Hello] = []
        self._flushing = 0
        """Hellos in the presence write under way (taken from `_hellos`, not yet written)."""
        self.connecting = 0
        """Connect streams authenticating now (api/agent_stream.py admission)."""
        self.refused = 0
        """Connect streams refused as busy since the last sweep (logged once per interval)."""
        self.started_at = app.clock.now()
        """When this hub started: its heartbeat touches only rows its own streams' hellos wrote
        (`connected_at` since then), never those a previous run of the same replica id left."""
        self._gone: dict[str, Connection] = {}
        """Ended streams whose offline write is due: device id -> the stream that ended."""
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._resend: set[str] = set()
        self._resend_ready = asyncio.Event()
        self.resent = 0

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._flush_loop(), name="presence-flusher"),
                       asyncio.create_task(self._sweep_loop(), name="offline-sweep"),
                       asyncio.create_task(self._resend_loop(), name="signal-resend")]

    async def close(self) -> None:
        for conn in list(self.connections.values()):
            conn.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush_once()

    # --- connections ---------------------------------------------------------------------

    @property
    def hello_backlog(self) -> int:
        """Hellos registered whose presence write (and desired-state read) has not finished."""
        return len(self._hellos) + self._flushing

    def register(self, device_id: str, hello: agent_pb2.Hello) -> Connection:
        from coordinator.domain import device_input  # every field a device sends is bounded first
        hello = device_input.hello(hello)
        old = self.connections.get(device_id)
        if old is not None:
            old.close()  # a newer stream from the same device wins
        conn = Connection(device_id, accepted_at=self.app.clock.now())
        self.connections[device_id] = conn
        self._gone.pop(device_id, None)
        windows = []
        for text in hello.maintenance_windows:
            try:
                parse_window(text)
                windows.append(text)
            except ValueError as exc:
                log.warning("device %s reported an invalid maintenance window %r: %s", device_id, text, exc)
        facts = json_format.MessageToDict(hello.facts, preserving_proto_field_name=True)
        self._hellos.append(_Hello(device_id, facts, windows, hello.agent_version, conn))
        self._ready.set()
        return conn

    def unregister(self, conn: Connection) -> None:
        conn.close()
        if self.connections.get(conn.device_id) is conn:
            del self.connections[conn.device_id]
            self._gone[conn.device_id] = conn
            self._ready.set()

    def heartbeat(self, conn: Connection) -> None:
        conn.last_seen = time.monotonic()

    def _send(self, device_id: str, msg: agent_pb2.CoordinatorMessage) -> bool:
        conn = self.connections.get(device_id)
        if conn is None:
            return False  # delivered when the device next connects (active jobs are re-sent)
        if conn.closed:
            return False
        conn.queue.put_nowait(msg)
        return True

    def refuse(self, device_ids: list[str]) -> None:
        """These devices were revoked: their streams here end now, refused (UNAUTHENTICATED)."""
        for device_id in device_ids:
            conn = self.connections.get(device_id)
            if conn is not None:
                log.info("device %s was revoked; closing its stream", device_id)
                conn.close(f"device {device_id} was revoked: its credential no longer works")

    def send_job(self, job: Dispatch) -> bool:
        if job.device_id not in self.connections:
            return False
        try:
            msg = job_message(job, self.app.store.info)
        except SealError as exc:  # the agent gets it on connect, once this replica has the key
            log.error("job %s not sent: %s", job.job_id, exc)
            return False
        return self._send(job.device_id, msg)

    def send_cancel(self, device_id: str, job_id: str, reason: str) -> bool:
        return self._send(device_id, agent_pb2.CoordinatorMessage(cancel=agent_pb2.CancelJob(job_id=job_id, reason=reason)))

    def send_ack(self, device_id: str, job_id: str, state: str) -> bool:
        return self._send(device_id, agent_pb2.CoordinatorMessage(ack=agent_pb2.Ack(job_id=job_id, state=state)))

    # --- other replicas' changes (coordinator/store/signals.py) ---------------------------

    def on_devices(self, device_ids: list[str]) -> None:
        """Another replica changed these devices' jobs: those streaming here get their desired
        state re-read and sent (one query per batch of signals, whatever the number of devices)."""
        local = [d for d in device_ids if d in self.connections]
        if local:
            self._resend.update(local)
            self._resend_ready.set()

    def resync(self) -> None:
        """Signals may have been lost: every device streaming here gets its desired state again."""
        if self.connections:
            self._resend.update(self.connections)
            self._resend_ready.set()

    async def _resend_loop(self) -> None:
        while True:
            await self._resend_ready.wait()
            self._resend_ready.clear()
            ids, self._resend = sorted(d for d in self._resend if d in self.connections), set()
            if not ids:
                continue
            try:
                desired = await self.app.run(self._desired, ids)
            except Exception:  # noqa: BLE001 - keep them and try again; the store is the truth
                log.exception("re-reading the jobs of %d devices failed; retrying", len(ids))
                self._resend.update(ids)
                await asyncio.sleep(1.0)
                self._resend_ready.set()
                continue
            self.refuse(desired.revoked)
            for job in desired.jobs:
                self.send_job(job)
            for device_id, job_id, reason in desired.withdrawn:
                self.send_cancel(device_id, job_id, reason)
            self.resent += len(ids)

    def _desired(self, device_ids: list[str]) -> rollout.DeviceJobs:
        with self.app.store.read() as s:
            return rollout.device_jobs(s, device_ids, self.app.settings.default_install_timeout_minutes)

    # --- batched presence writes ---------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            try:
                await self._flush_once()
            except Exception:  # noqa: BLE001
                log.exception("presence flush failed; retrying")
                await asyncio.sleep(1.0)
                self._ready.set()
            await asyncio.sleep(self.app.settings.report_flush_interval_s)

    async def _flush_once(self) -> None:
        hellos, self._hellos = self._hellos, []
        gone, self._gone = self._gone, {}
        if not (hellos or gone):
            return
        self._flushing = len(hellos)
        try:
            desired = await self.app.run(self._write_presence, hellos, gone, self.app.clock.now())
        except BaseException:
            self._flushing = 0
            # Put them back (before anything queued since): the next flush writes them, and the
            # connected devices still get their jobs.
            self._hellos = hellos + self._hellos
            self._gone = gone | self._gone  # a newer end of the same device's stream wins
            raise
        self._flushing = 0
        if desired.late_arrivals:
            self.app.engine.poke(*desired.late_arrivals)
        self.refuse(desired.revoked)  # revoked between its authentication and its hello's write
        for job in desired.jobs:
            self.send_job(job)
        for device_id, job_id, reason in desired.withdrawn:
            self.send_cancel(device_id, job_id, reason)

    def _write_presence(self, hellos: list[_Hello], gone: dict[str, Connection], now: datetime) -> rollout.DeviceJobs:
        live = [h for h in hellos if self.connections.get(h.device_id) is h.conn]
        with self.app.store.tx() as s:
            tbl: Any = m.Device.__table__
            # A hello takes the row unless it holds a stream accepted later (on another replica).
            hello_write = tbl.update().where(
                tbl.c.id == bindparam("b_id"),
                or_(tbl.c.connected_at.is_(None), tbl.c.connected_at <= bindparam("b_at"))).values(
                online=True, last_seen_at=now, updated_at=now, connection_id=bindparam("b_conn"),
                replica_id=self.app.replica_id,
                connected_at=bindparam("b_at"), hostname=bindparam("hostname"), os=bindparam("os"),
                os_version=bindparam("os_version"), arch=bindparam("arch"), cpu_count=bindparam("cpu_count"),
                memory_bytes=bindparam("memory_bytes"), disks=bindparam("disks"), ip_addresses=bindparam("ips"),
                maintenance_windows=bindparam("windows"), agent_version=bindparam("agent_version"))
            for part in chunks(live):
                s.execute(hello_write, [
                    {"b_id": h.device_id, "b_conn": h.conn.id, "b_at": h.conn.accepted_at or now,
                     "hostname": h.facts.get("hostname", ""), "os": h.facts.get("os", ""),
                     "os_version": h.facts.get("os_version", ""), "arch": h.facts.get("arch", ""),
                     "cpu_count": int(h.facts.get("cpu_count", 0)), "memory_bytes": int(h.facts.get("memory_bytes", 0)),
                     "disks": h.facts.get("disks", []), "ips": h.facts.get("ip_addresses", []), "windows": h.windows,
                     "agent_version": h.agent_version} for h in part])
            ended = [c for d, c in gone.items() if d not in self.connections]
            for part in chunks(ended):
                # Only rows still held by the stream that ended: the ids are unique per stream.
                s.execute(update(m.Device).where(m.Device.id.in_([c.device_id for c in part]),
                                                 m.Device.connection_id.in_([c.id for c in part]))
                          .values(online=False, connection_id=None, replica_id=None, updated_at=now)
                          .execution_options(synchronize_session=False))
            desired = rollout.device_jobs(s, [h.device_id for h in live],
                                          self.app.settings.default_install_timeout_minutes)
            desired.late_arrivals = rollout.wake_late_arrivers(s, [h.device_id for h in live], now)
            return desired

    # --- liveness ------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        settings = self.app.settings
        interval = settings.heartbeat_interval_s
        await self.app.run(self._mark_stale_offline, self.app.clock.now())
        while True:
            await asyncio.sleep(interval)
            limit = interval * settings.offline_after_missed
            now_mono = time.monotonic()
            if self.refused:
                log.info("%d agent streams asked to come back later (busy: %d being set up at most)",
                         self.refused, settings.connect_admission_limit)
                self.refused = 0
            for conn in list(self.connections.values()):
                if now_mono - conn.last_seen > limit:
                    log.info("device %s missed %d heartbeats; closing its stream", conn.device_id,
                             settings.offline_after_missed)
                    self.unregister(conn)
            try:
                await self.app.run(self._touch, self.app.clock.now())
            except Exception:  # noqa: BLE001
                log.exception("heartbeat write failed")

    def _touch(self, now: datetime) -> None:
        limit = timedelta(seconds=self.app.settings.heartbeat_interval_s * self.app.settings.offline_after_missed)
        with self.app.store.tx() as s:
            s.execute(self.heartbeat_write(now))
            self._stale(s, now - limit)

    def heartbeat_write(self, now: datetime) -> Any:
        """Every row a live stream of this replica holds, in one statement whatever the fleet's
        size (an IN-list of every connected device was 37% of the coordinator's CPU with 20,000
        idle agents on PostgreSQL). The rows this replica's hellos wrote since it started: a row
        a device moved elsewhere carries the other replica's id, one whose end was written has
        none, and one a previous run of this replica id left is older than `started_at`. A
        stream that went silent is closed by the sweep before this write (its offline write
        clears the row's replica id)."""
        return (update(m.Device).where(m.Device.replica_id == self.app.replica_id,
                                       m.Device.connected_at >= self.started_at)
                .values(last_seen_at=now, online=True).execution_options(synchronize_session=False))

    def _mark_stale_offline(self, now: datetime) -> None:
        limit = timedelta(seconds=self.app.settings.heartbeat_interval_s * self.app.settings.offline_after_missed)
        with self.app.store.tx() as s:
            self._stale(s, now - limit)

    def _stale(self, s: Any, before: datetime) -> None:
        """Devices whose coordinator vanished: online in the store, silent for too long."""
        stale = [d for d in s.scalars(select(m.Device.id).where(m.Device.online.is_(True),
                                                                 m.Device.last_seen_at < before))
                 if d not in self.connections]
        for chunk in chunks(stale):
            # The condition again in the UPDATE: a device that another replica's hello (or
            # heartbeat) wrote since the SELECT is not stale any more and stays online.
            s.execute(update(m.Device).where(m.Device.id.in_(chunk), m.Device.online.is_(True),
                                             m.Device.last_seen_at < before)
                      .values(online=False).execution_options(synchronize_session=False))
