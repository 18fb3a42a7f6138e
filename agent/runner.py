"""The job runner: carries one journaled job through its states, one job per deployment at a time.

    received → (with a trust set, not signed by a pinned key for this very job: failed "signature")
             → (outside every window, if asked: skipped "outside_maintenance_window", or with
                a window wait: held until the next window opens, software fetched first)
             → downloading (software installs: fetch and verify the artifact)
             → installing (then the deployment's verify script, if any) → completed | failed

Each state is journaled before the runner acts on it, then reported through `emit`. A cancel is
honoured until installing begins. Jobs of different deployments run concurrently (up to
`workers`); jobs of one deployment run in arrival order, one at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent import trust_set
from agent.download import DownloadError
from agent.installers import InstallError, JobContext, Outcome, installer_for
from agent.journal import JobState, Journal, JournalEntry
from agent.state import StateDir
from common.clock import Clock
from common.convoy.v1 import agent_pb2
from common.maintenance import in_window, next_opening
from common.signing import SIGNATURE_REASON

log = logging.getLogger("convoy.agent.runner")

OUTSIDE_WINDOW = "outside_maintenance_window"
VERIFICATION = "verification"
"""The reason of a job whose install succeeded but whose verify script did not: `verification: …`."""

Emit = Callable[[agent_pb2.JobStatus], None]
Fetch = Callable[[str, "int | None"], Awaitable[Path]]


class Runner:
    def __init__(self, *, state: StateDir, journal: Journal, device_id: str, emit: Emit, fetch: Fetch,
                 windows: Callable[[], list[str]], clock: Clock,
                 on_settings: Callable[[Mapping[str, Any]], None] | None = None, workers: int = 4) -> None:
        self.state = state
        self.journal = journal
        self.device_id = device_id
        self.emit = emit
        self.fetch = fetch
        self.windows = windows
        self.clock = clock
        self.on_settings = on_settings
        self._slots = asyncio.Semaphore(workers)
        self._lanes: dict[str, asyncio.Lock] = {}
        self._lane_users: dict[str, int] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: dict[str, str] = {}
        self._installing: set[str] = set()
        self._wake: dict[str, asyncio.Event] = {}
        self._stopping = False

    # --- the daemon's side --------------------------------------------------------------

    def submit(self, job_id: str) -> None:
        """Queue a journaled `received` job (no-op if it is queued or past that state)."""
        entry = self.journal.get(job_id)
        if self._stopping or entry is None or entry.state != JobState.RECEIVED or job_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._lane(job_id, entry.deployment_id))
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))

    def cancel(self, job_id: str, reason: str = "") -> None:
        """CancelJob: drop the job unless installing has begun."""
        entry = self.journal.get(job_id)
        if entry is None:
            log.info("cancel for unknown job %s ignored", job_id)
            return
        if entry.state == JobState.RECEIVED:
            self._finish(job_id, JobState.CANCELLED, reason=reason or "cancelled by the coordinator")
            if job_id in self._wake:
                self._wake[job_id].set()  # a job held for its window stops waiting
        elif entry.state == JobState.DOWNLOADING:
            self._cancel_requested[job_id] = reason or "cancelled by the coordinator"
            log.info("job %s will be cancelled once its download stops", job_id)
        elif entry.state == JobState.INSTALLING:
            log.info("cancel for job %s ignored: already installing, it runs to its end", job_id)
        else:
            self.emit(entry.status())

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    async def stop(self) -> None:
        """Stop taking jobs; hand back the ones not installing (they stay `received` and run
        after the next start); let the installing ones finish and report."""
        self._stopping = True
        for job_id, task in list(self._tasks.items()):
            if job_id not in self._installing:
                task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # --- one job ------------------------------------------------------------------------

    async def _lane(self, job_id: str, deployment_id: str) -> None:
        lane = self._lanes.setdefault(deployment_id, asyncio.Lock())
        self._lane_users[deployment_id] = self._lane_users.get(deployment_id, 0) + 1
        try:
            async with lane:
                # Signed work: the one check before anything of the job happens, held or not
                # (no prefetch, no window wait, no install; docs/security.md).
                if self._refused(job_id):
                    return
                if await self._hold_for_window(job_id):
                    async with self._slots:
                        await self._execute(job_id)
        except asyncio.CancelledError:
            log.info("job %s handed back: the agent is stopping", job_id)
            raise
        finally:
            self._lane_users[deployment_id] -= 1
            if not self._lane_users[deployment_id]:
                del self._lane_users[deployment_id], self._lanes[deployment_id]

    async def _hold_for_window(self, job_id: str) -> bool:
        """windowPolicy "wait": outside every window, fetch a software artifact now, then wait
        (holding no worker slot) until a window opens. False if the job ended meanwhile (cancelled,
        or no window opens within its limit: skipped). The job stays `received` in the journal
        while held, so an agent restarted meanwhile holds it again, with the same limit."""
        entry = self.journal.get(job_id)
        if entry is None or entry.state != JobState.RECEIVED:
            return False
        if not entry.respect_maintenance_windows or entry.window_wait_max_seconds <= 0 \
                or in_window(self.windows(), self.clock.now()):
            return True
        received = datetime.fromisoformat(entry.received_at) if entry.received_at else self.clock.now()
        limit = received + timedelta(seconds=entry.window_wait_max_seconds)
        if not await self._prefetch(job_id):
            return False
        wake = self._wake.setdefault(job_id, asyncio.Event())
        try:
            while True:
                entry = self.journal.get(job_id)
                if entry is None or entry.state != JobState.RECEIVED:
                    return False
                now = self.clock.now()
                windows = self.windows()
                opens = next_opening(windows, now, max(timedelta(0), limit - now))
                if opens is None:
                    self._finish(job_id, JobState.SKIPPED, reason=f"{OUTSIDE_WINDOW}: no window opens within "
                                 f"{entry.window_wait_max_seconds / 3600:g} hours")
                    return False
                if opens <= now:
                    return True
                log.info("job %s held until its maintenance window opens at %s", job_id, opens.isoformat())
                await self.clock.wait(wake, (opens - now).total_seconds())
        finally:
            self._wake.pop(job_id, None)

    async def _prefetch(self, job_id: str) -> bool:
        """Fetch a held software job's artifact now (it is verified again, from the cache, when the
        job runs); the journal goes back to `received` so a restart holds the job again."""
        entry = self.journal.get(job_id)
        assert entry is not None
        spec = entry.payload.get("artifact")
        if entry.type != "software" or str(entry.payload.get("action") or "install") != "install" \
                or not isinstance(spec, dict) or not isinstance(spec.get("sha256"), str):
            return True
        size = spec.get("size")
        async with self._slots:
            self._move(job_id, JobState.DOWNLOADING)
            try:
                await self.fetch(spec["sha256"], int(size) if isinstance(size, (int, float)) and size > 0 else None)
            except DownloadError as exc:
                self._finish(job_id, JobState.FAILED, reason=str(exc))
                return False
            finally:
                current = self.journal.get(job_id)
                if current is not None and current.state == JobState.DOWNLOADING:
                    self.journal.update(job_id, JobState.RECEIVED)
        if job_id in self._cancel_requested:
            self._finish(job_id, JobState.CANCELLED, reason=self._cancel_requested.pop(job_id))
            return False
        return True

    def _move(self, job_id: str, state: JobState) -> None:
        entry = self.journal.update(job_id, state)
        log.info("job %s %s", job_id, state)
        self.emit(entry.status())

    def _finish(self, job_id: str, state: JobState, *, exit_code: int | None = None, output: str = "",
                reason: str = "") -> None:
        entry = self.journal.update(job_id, state, exit_code=exit_code, output=output, reason=reason)
        log.info("job %s %s%s", job_id, state, f": {reason}" if reason else "")
        self.emit(entry.status())

    def _refused(self, job_id: str) -> bool:
        """Fail a `received` job the trust set refuses (reason `signature`); True if it did."""
        entry = self.journal.get(job_id)
        if entry is None or entry.state != JobState.RECEIVED:
            return False
        refused = self._unsigned(entry)
        if refused is None:
            return False
        log.warning("job %s refused: %s", job_id, refused)
        self._finish(job_id, JobState.FAILED, reason=SIGNATURE_REASON, output=refused)
        return True

    def _unsigned(self, entry: JournalEntry) -> str | None:
        """Why the trust set refuses this job (None: no trust set, or signed and matching)."""
        try:
            trust = trust_set.load(self.state)
        except trust_set.TrustError as exc:
            return str(exc)
        if trust is None:
            return None
        return trust.check_job(deployment_id=entry.deployment_id, type_=entry.type, payload=entry.payload,
                               rollback=entry.rollback, manifest=entry.manifest, key_id=entry.signature_key_id,
                               signature=entry.signature, now=self.clock.now())

    async def _execute(self, job_id: str) -> None:
        entry = self.journal.get(job_id)
        if entry is None or entry.state != JobState.RECEIVED:
            return  # cancelled while it waited its turn
        if entry.respect_maintenance_windows and not in_window(self.windows(), self.clock.now()):
            self._finish(job_id, JobState.SKIPPED, reason=OUTSIDE_WINDOW)
            return
        try:
            installer = installer_for(entry.type)
        except InstallError as exc:
            self._finish(job_id, JobState.FAILED, reason=str(exc))
            return
        payload = entry.payload
        artifact: Path | None = None
        if entry.type == "software" and str(payload.get("action") or "install") == "install":
            spec = payload.get("artifact")
            if not isinstance(spec, dict) or not isinstance(spec.get("sha256"), str):
                self._finish(job_id, JobState.FAILED, reason="payload names no artifact sha256")
                return
            self._move(job_id, JobState.DOWNLOADING)
            size = spec.get("size")
            try:
                artifact = await self.fetch(spec["sha256"], int(size) if isinstance(size, (int, float)) and size > 0 else None)
            except DownloadError as exc:
                self._finish(job_id, JobState.FAILED, reason=str(exc))
                return
            except asyncio.CancelledError:
                # A clean stop mid-download: nothing was installed, so the job may run later.
                self.journal.update(job_id, JobState.RECEIVED)
                raise
        if job_id in self._cancel_requested:
            self._finish(job_id, JobState.CANCELLED, reason=self._cancel_requested.pop(job_id))
            return
        ctx = JobContext(job_id=job_id, deployment_id=entry.deployment_id, device_id=self.device_id,
                         attempt=entry.attempt, payload=payload, state=self.state,
                         timeout_seconds=entry.timeout_seconds, rollback=entry.rollback, artifact=artifact)
        self._installing.add(job_id)
        try:
            self._move(job_id, JobState.INSTALLING)
            outcome = await self._install(installer, ctx)
            if outcome.success and payload.get("verify") is not None:
                outcome = await self._verify(ctx, outcome)
        finally:
            self._installing.discard(job_id)
        self._finish(job_id, JobState.COMPLETED if outcome.success else JobState.FAILED,
                     exit_code=outcome.exit_code, output=outcome.output, reason=outcome.reason)
        if entry.type == "policy" and outcome.success and self.on_settings is not None:
            self.on_settings(outcome.settings)

    async def _verify(self, ctx: JobContext, installed: Outcome) -> Outcome:
        """rolloutConfig.verify: run the check script right after a successful install, as part of
        the same job (one journal entry, one result). Its payload is checked like any script's.
        Only a passing check keeps the job completed; the output holds both, the check's last."""
        from agent.installers import script

        check = ctx.payload.get("verify")
        if not isinstance(check, Mapping):
            checked = Outcome(False, None, "", "payload field 'verify' must be an object")
        else:
            seconds = check.get("timeoutSeconds")
            timeout = float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else ctx.timeout
            vctx = replace(ctx, job_id=f"{ctx.job_id}-verify", timeout_seconds=timeout,
                           payload={"interpreter": check.get("interpreter"), "body": check.get("body"),
                                    "parameters": {}})
            checked = await self._install(script.run, vctx)
        output = f"{installed.output}\n--- verify ---\n{checked.output}" if installed.output else checked.output
        if checked.success:
            return Outcome(True, installed.exit_code, output, "", installed.settings)
        return Outcome(False, checked.exit_code, output, f"{VERIFICATION}: {checked.reason}", installed.settings)

    async def _install(self, installer: Callable[[JobContext], Outcome], ctx: JobContext) -> Outcome:
        try:
            return await asyncio.to_thread(installer, ctx)
        except InstallError as exc:
            return Outcome(False, None, "", str(exc))
        except Exception as exc:  # noqa: BLE001 - any installer bug must still end the job
            log.exception("installer for job %s crashed", ctx.job_id)
            return Outcome(False, None, "", f"installer error: {type(exc).__name__}: {exc}")
