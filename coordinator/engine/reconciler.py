"""The rollout engine: an event-driven reconciler over durable state.

It wakes when something happens (an API action, a batch of agent reports) and when the earliest
stored due time arrives (batch delay, retry backoff, install deadline); there is no polling loop
per device or per deployment. Each wake reconciles only the deployments that need it, each in
its own transaction (`engine.rollout.reconcile`). On start it reconciles every live deployment,
which is how a coordinator killed mid-rollout picks up exactly where the store says it was.

Agent reports are queued by the Connect streams and written by one flusher, one transaction per
tick, however many reports arrived (`apply_reports`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import OperationalError

from coordinator.app import App
from coordinator.engine import rollout
from coordinator.engine.rollout import Dispatch, EngineParams, ReconcileResult, Report

log = logging.getLogger("convoy.engine")

MAX_SLEEP_S = 10.0
"""The loop re-reads the stored due times at least this often, signal or not."""
HELD_RETRY_S = 0.5
"""A deployment another engine (or this replica's report writer) holds is looked at again after
this many real seconds (lock contention is about now, not about the rollout's clock)."""


class Engine:
    def __init__(self, app: App) -> None:
        self.app = app
        self._wake = asyncio.Event()
        self._dirty: set[str] = set()
        self._all = True  # reconcile everything on the first pass (restart recovery)
        self._held: dict[str, datetime] = {}
        """Deployments not to look at before this time: another replica held them, or their
        reconcile failed (the retry time is stored too). Never the only copy of a due time."""
        self._busy: dict[str, float] = {}
        """Deployments found locked (monotonic time to look again): skipped, never forgotten."""
        self.skipped = 0
        self._stored: set[str] = set()  # deployments whose last reconcile here stored a due time
        self.actor = f"engine@{app.replica_id}"[:64] if app.replica_id else "engine"
        self._failures: dict[str, int] = {}
        self._reports: list[Report] = []
        self._reports_ready = asyncio.Event()
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self.ticks = 0
        # Silence is never counted from before this engine started: the coordinator's own
        # downtime is not the devices' silence (docs/deployments-rules.md, "Deadlines").
        self.params = EngineParams(default_timeout_minutes=app.settings.default_install_timeout_minutes,
                                   silence_floor=app.clock.now())

    # --- doors in ------------------------------------------------------------------------

    def poke(self, *deployment_ids: str) -> None:
        """Something changed for these deployments: reconcile them soon (and tell the other
        replicas' watchers)."""
        self._dirty.update(deployment_ids)
        self._wake.set()
        self.notify(*deployment_ids)
        self._publish_deployments(deployment_ids)

    def submit(self, report: Report) -> None:
        """Queue an agent job status; written with the others in the next tick."""
        self._reports.append(report)
        self._reports_ready.set()

    def subscribe(self, deployment_id: str) -> asyncio.Event:
        ev = asyncio.Event()
        self._watchers.setdefault(deployment_id, set()).add(ev)
        return ev

    def unsubscribe(self, deployment_id: str, ev: asyncio.Event) -> None:
        self._watchers.get(deployment_id, set()).discard(ev)
        if not self._watchers.get(deployment_id):
            self._watchers.pop(deployment_id, None)

    def notify(self, *deployment_ids: str) -> None:
        for dep in deployment_ids:
            for ev in self._watchers.get(dep, ()):
                ev.set()

    # --- the loops -----------------------------------------------------------------------

    async def run(self) -> None:
        """The engine's loops. The coordinator starts them once agents can reach it (its gRPC
        server is listening), and silence is counted from then: the time the process took to
        start is downtime too, not the devices' silence."""
        self.params = dataclasses.replace(self.params, silence_floor=self.app.clock.now())
        flusher = asyncio.create_task(self._flush_loop(), name="report-flusher")
        try:
            await self._reconcile_loop()
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)

    async def _reconcile_loop(self) -> None:
        clock = self.app.clock
        while True:
            now = clock.now()
            targets: set[str] = set(self._dirty)
            self._dirty.clear()
            self._wake.clear()
            if self._all:
                self._all = False
                targets |= set(await self.app.run(self._live_ids))
            mono = time.monotonic()
            targets |= {d for d, t in self._busy.items() if t <= mono}  # look again, once each
            self._busy = {d: t for d, t in self._busy.items() if t > mono}
            self._held = {d: t for d, t in self._held.items() if t > now}
            due: list[str] = []
            earliest: datetime | None = None
            if not targets:  # local changes go first (as fast as before); the stored timers next pass
                try:
                    due, earliest = await self.app.run(self._timers, now)
                except OperationalError:  # the store is away: what is due stays due in it
                    log.exception("reading the stored due times failed (store unavailable); retrying")
                    due, earliest = [], now + timedelta(seconds=1)
                targets |= {d for d in due if d not in self._held and d not in self._busy}
            if not targets:
                timeout = MAX_SLEEP_S
                waits = [t for t in (earliest, *self._held.values()) if t is not None]
                if waits:  # from the clock's time now: it may have moved during the read
                    timeout = min(timeout, max(0.0, (min(waits) - clock.now()).total_seconds()))
                # A wake is a poke, a report batch, or another replica's deployment signal (its
                # reconcile may have stored an earlier due time): the loop re-reads them all.
                await clock.wait(self._wake, timeout)
                continue
            for dep in sorted(targets):
                try:
                    result = await self.app.run(self._reconcile_one, dep, clock.now())
                except Exception:  # noqa: BLE001 - one bad deployment must not stop the others
                    # Retry this deployment later, with backoff (stored: every replica backs off);
                    # never stall the others.
                    failures = self._failures[dep] = self._failures.get(dep, 0) + 1
                    delay = min(60.0, 2.0 ** min(failures, 6))
                    log.exception("reconcile of deployment %s failed (%d in a row); retrying in %.0fs",
                                  dep, failures, delay)
                    at = clock.now() + timedelta(seconds=delay)
                    self._held[dep] = at
                    try:
                        await self.app.run(self._postpone, dep, at)
                    except Exception:  # noqa: BLE001 - the store is away: the local hold still applies
                        log.warning("could not store the retry time of deployment %s", dep)
                    continue
                self._failures.pop(dep, None)
                if result.skipped:
                    # Another replica's engine holds it right now and will store its next due
                    # time; look again shortly (real time, whatever the clock) rather than
                    # spinning on the stored one.
                    self._busy[dep] = time.monotonic() + HELD_RETRY_S
                    asyncio.get_running_loop().call_later(HELD_RETRY_S, self._wake.set)
                    self.skipped += 1
                    continue
                self._after(result)
            self.ticks += 1

    def _live_ids(self) -> list[str]:
        with self.app.store.read() as s:
            return rollout.live_deployment_ids(s)

    def _timers(self, now: datetime) -> tuple[list[str], datetime | None]:
        with self.app.store.read() as s:
            return rollout.due_deployment_ids(s, now), rollout.earliest_due(s)

    def _postpone(self, dep: str, at: datetime) -> None:
        with self.app.store.tx() as s:
            rollout.postpone(s, dep, at)

    def _reconcile_one(self, dep: str, now: datetime) -> ReconcileResult:
        with self.app.store.tx() as s:
            result = rollout.reconcile(s, dep, now, params=self.params, actor=self.actor, skip_locked=True)
            # Agents on other replicas hear of their jobs at commit, or never if this rolls back.
            self._signal_in(s, [j.device_id for j in result.dispatched] + [d for d, _, _ in result.withdrawn],
                            [dep] if result.changed else [])
            return result

    def _signal_in(self, s: Any, devices: list[str], deployments: list[str]) -> None:
        if self.app.signals is not None and (devices or deployments):
            self.app.signals.in_transaction(s, devices=devices, deployments=deployments)

    def _after(self, result: ReconcileResult) -> None:
        if result.next_due is not None:
            self._stored.add(result.deployment_id)
        else:
            self._stored.discard(result.deployment_id)
        self.withdraw(result.withdrawn)
        if result.dispatched:
            self.deliver(result.dispatched)
        if result.also:
            self.poke(*result.also)
        if result.changed:
            self.notify(result.deployment_id)  # (the other replicas were signalled at commit)

    def withdraw(self, jobs: Iterable[tuple[str, str, str]]) -> None:
        """Tell the agents connected here about withdrawals (stored, and signalled to the other
        replicas in the same transaction; an agent offline hears on connect)."""
        hub = self.app.hub
        if hub is not None:
            for device_id, job_id, reason in jobs:
                hub.send_cancel(device_id, job_id, reason)

    def deliver(self, jobs: Iterable[Dispatch]) -> None:
        """The same for new jobs."""
        hub = self.app.hub
        if hub is not None:
            for job in jobs:
                hub.send_job(job)

    def _publish_deployments(self, deployment_ids: Iterable[str]) -> None:
        if self.app.signals is not None:
            self.app.signals.publish_deployments(deployment_ids)

    # --- other replicas' signals -------------------------------------------------------------

    def on_deployments(self, deployment_ids: list[str]) -> None:
        """Another replica changed these deployments: wake our watchers, and our loop (it re-reads
        the stored due times, so a batch delay set elsewhere is kept here too)."""
        self.notify(*deployment_ids)
        self._wake.set()

    def resync(self) -> None:
        """Signals may have been lost: every watcher looks again, the loop re-reads due times."""
        self.notify(*list(self._watchers))
        self._wake.set()

    async def _flush_loop(self) -> None:
        interval = self.app.settings.report_flush_interval_s
        while True:
            await self._reports_ready.wait()
            self._reports_ready.clear()
            batch, self._reports = self._reports, []
            if not batch:
                continue
            try:
                result = await self.app.run(self._apply_reports, batch, self.app.clock.now())
            except OperationalError:  # the store is away: keep every report and try again
                log.exception("writing %d agent reports failed (store unavailable); retrying", len(batch))
                self._reports = batch + self._reports
                self._reports_ready.set()
                await asyncio.sleep(1.0)
                continue
            except Exception:  # noqa: BLE001 - one bad report must not block every other one
                log.exception("writing %d agent reports failed; applying them one by one", len(batch))
                result = await self.app.run(self._apply_one_by_one, batch, self.app.clock.now())
            hub = self.app.hub
            if hub is not None:
                for device_id, job_id, state in result.acks:
                    hub.send_ack(device_id, job_id, state)
            self.withdraw(result.withdrawn)
            if result.touched:
                self.poke(*result.touched)
            await asyncio.sleep(interval)  # let the next tick's reports gather

    def _apply_one_by_one(self, batch: list[Report], now: datetime) -> rollout.ReportResult:
        """Isolate a report the store refuses: the others are written, the bad one is dropped
        (and logged) instead of being retried forever."""
        out = rollout.ReportResult()
        for report in batch:
            try:
                one = self._apply_reports([report], now)
            except Exception:  # noqa: BLE001
                log.exception("dropping an agent report the store refuses: device %s job %s state %s",
                              report.device_id, report.job_id, report.state)
                continue
            out.acks.extend(one.acks)
            out.touched |= one.touched
            out.withdrawn.extend(one.withdrawn)
        return out

    def _apply_reports(self, batch: list[Report], now: datetime) -> rollout.ReportResult:
        with self.app.store.tx() as s:
            result = rollout.apply_reports(s, batch, now, self.params)
            self._signal_in(s, [d for d, _, _ in result.withdrawn], [])
            return result

    def stats(self) -> dict[str, Any]:
        return {"ticks": self.ticks, "queued_reports": len(self._reports), "scheduled": len(self._stored),
                "held": len(self._held) + len(self._busy),
                "skipped": self.skipped}
