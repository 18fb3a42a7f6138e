"""`rolloutConfig`, parsed once into frozen dataclasses whose methods hold the rules.

The JSON body is validated by `domain/spec.py` at the door and stored normalized; the engine,
the service and the per-device machine read it only through `RolloutConfig.parse`, never with
`dict.get(key, default)`. Defaults live here and in the spec, nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from coordinator.domain.backoff import backoff_minutes

DEFAULT_INSTALL_TIMEOUT_MINUTES = 30.0
"""What `installTimeoutMinutes: null` means when the coordinator was given no `--install-timeout`."""


@dataclass(frozen=True)
class RetryPolicy:
    """retryConfig (seed 004, "Retry and Failure Handling")."""

    max_retries: int = 0
    """Retries allowed after the first attempt that ran (0..10)."""
    backoff_minutes: tuple[float, ...] = (5.0,)
    """Wait before retry i+1 is `backoff_minutes[min(i, len-1)]`: the last value repeats."""

    def may_retry(self, runs: int) -> bool:
        """After `runs` attempts that ran (the last one failed), may another one run?

        Retries used are `runs - 1`: the first attempt is not a retry."""
        return max(0, runs - 1) < self.max_retries

    def wait_before(self, runs: int) -> timedelta:
        """The backoff before the attempt that follows `runs` attempts that ran (retry number `runs`)."""
        return timedelta(minutes=backoff_minutes(self.backoff_minutes, max(1, runs)))


@dataclass(frozen=True)
class Staggered:
    """rolloutConfig.staggered: batches, the delay between them and the auto-pause thresholds."""

    batch_size: int | str = 1
    """An integer >= 1, or "N%" of the devices resolved at initialize."""
    batch_delay_minutes: float = 0.0
    """The next batch starts this long after the previous one is done."""
    pause_on_failure_count: int | None = None
    """Pause when this many devices failed (since the last resume)."""
    pause_on_failure_percent: float | None = None
    """Pause when failed devices (since the last resume) reach this percentage of the targets."""
    # --- rollout strategies (docs/deployments-rules.md, "Rollout strategies") ---
    batches: tuple[int | str, ...] | None = None
    """A step list instead of batchSize: each an integer or "N%"; the last repeats."""
    ramp: Mapping[str, Any] | None = None
    """{"start", "factor", "max"}: each batch the previous × factor, capped."""
    success_gate_percent: float | None = None
    """The next batch starts only when at least this share of the finished batch completed."""
    failure_basis: str = "targets"
    """The percent threshold's denominator: "targets" (seed 004) or "finished" (since the last resume)."""
    min_finished_for_percent: int = 0
    """No percent pause before this many devices finished (since the last resume)."""

    def next_batch_due(self, batch_finished_at: datetime) -> datetime:
        return batch_finished_at + timedelta(minutes=self.batch_delay_minutes)


# --- health check, late arrivers, waiting for the window (docs/deployments-rules.md) ---------------

DEFAULT_VERIFY_TIMEOUT_MINUTES = 10.0
"""`rolloutConfig.verify.timeoutMinutes` when left out."""
DEFAULT_WINDOW_WAIT_MAX_HOURS = 168.0
"""`rolloutConfig.windowWaitMaxHours` when left out: a device whose next window opens later than
this after dispatch is skipped as outside its window (a week covers every weekly window)."""


@dataclass(frozen=True)
class Verify:
    """rolloutConfig.verify: a script each device runs right after a successful install."""

    script_id: str
    timeout_minutes: float = DEFAULT_VERIFY_TIMEOUT_MINUTES


@dataclass(frozen=True)
class OfflineDevices:
    """rolloutConfig.offlineDevices: what a device offline when its batch is dispatched gets."""

    policy: str = "skip"
    """skip (seed 004: skipped at once) | wait (late arrivers get the job when they connect)."""
    wait_minutes: float = 0.0
    """With `wait`: how long after the batch's start a device may still connect and get it."""

    @property
    def waits(self) -> bool:
        return self.policy == "wait" and self.wait_minutes > 0

    def wait_until(self, batch_started_at: datetime) -> datetime:
        return batch_started_at + timedelta(minutes=self.wait_minutes)


@dataclass(frozen=True)
class RolloutConfig:
    """The whole rolloutConfig of a deployment."""

    type: str = "immediate"
    """immediate | staggered."""
    staggered: Staggered = field(default_factory=Staggered)
    """Meaningful for staggered rollouts; an immediate one behaves as one batch, no thresholds."""
    respect_maintenance_windows: bool = False
    """Skip a device outside its maintenance windows when its job would be dispatched."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    install_timeout_minutes: float | None = None
    """Silence allowed from a device running a job before its attempt is failed; None: the
    coordinator's default (`convoy coordinator serve --install-timeout`)."""
    verify: Verify | None = None
    """A health check after each successful install; None: the install's result is the record's."""
    offline_devices: OfflineDevices = field(default_factory=OfflineDevices)
    window_policy: str = "skip"
    """With respectMaintenanceWindows, a device outside its windows at dispatch is skipped (skip)
    or gets the job now and installs when its next window opens (wait)."""
    window_wait_max_hours: float = DEFAULT_WINDOW_WAIT_MAX_HOURS

    @property
    def waits_for_window(self) -> bool:
        return self.respect_maintenance_windows and self.window_policy == "wait"

    @property
    def window_wait_max(self) -> timedelta:
        return timedelta(hours=self.window_wait_max_hours)
    # --- rollout strategies ---
    max_per_minute: int | None = None
    """At most this many jobs dispatched in any 60 seconds, across the deployment (None: no cap)."""
    on_failure_threshold: str = "pause"
    """What a crossed threshold does: pause (seed 004) | cancel | rollback."""
    start_at: datetime | None = None
    """The first batch is dispatched at this time (None: when started)."""

    @property
    def is_staggered(self) -> bool:
        return self.type == "staggered"

    @property
    def thresholds(self) -> Staggered:
        """Threshold settings; an immediate rollout has none."""
        return self.staggered if self.is_staggered else Staggered()

    def install_timeout(self, default_minutes: float) -> timedelta:
        minutes = self.install_timeout_minutes if self.install_timeout_minutes else default_minutes
        return timedelta(minutes=float(minutes))

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> RolloutConfig:
        """From the stored (already validated) JSON. Unknown or missing keys take the defaults."""
        raw = raw or {}
        s = raw.get("staggered") or {}
        r = raw.get("retryConfig") or {}
        backoff = r.get("backoffMinutes")
        timeout = raw.get("installTimeoutMinutes")
        return cls(
            type=str(raw.get("type") or "immediate"),
            staggered=Staggered(
                batch_size=s.get("batchSize", 1),
                batch_delay_minutes=float(s.get("batchDelayMinutes") or 0),
                pause_on_failure_count=s.get("pauseOnFailureCount"),
                pause_on_failure_percent=s.get("pauseOnFailurePercent"),
                **_staggered_strategies(s),
            ),
            respect_maintenance_windows=bool(raw.get("respectMaintenanceWindows")),
            retry=RetryPolicy(
                max_retries=int(r.get("maxRetries") or 0),
                backoff_minutes=tuple(float(v) for v in backoff) if backoff else (5.0,),
            ),
            install_timeout_minutes=float(timeout) if timeout else None,
            **_parse_devstrat(raw),
            **_strategies(raw),
        )


def _parse_devstrat(raw: Mapping[str, Any]) -> dict[str, Any]:
    """verify, offlineDevices, windowPolicy and windowWaitMaxHours (absent: the seed's behaviour)."""
    out: dict[str, Any] = {}
    v = raw.get("verify")
    if v:
        out["verify"] = Verify(script_id=str(v["scriptId"]),
                               timeout_minutes=float(v.get("timeoutMinutes") or DEFAULT_VERIFY_TIMEOUT_MINUTES))
    o = raw.get("offlineDevices")
    if o:
        out["offline_devices"] = OfflineDevices(policy=str(o.get("policy") or "skip"),
                                                wait_minutes=float(o.get("waitMinutes") or 0))
    if raw.get("windowPolicy"):
        out["window_policy"] = str(raw["windowPolicy"])
    if raw.get("windowWaitMaxHours"):
        out["window_wait_max_hours"] = float(raw["windowWaitMaxHours"])
    return out


def _strategies(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The rollout-strategy fields of `parse` (items 1, 2, 4, 5, 8 of the strategies)."""
    per_minute = raw.get("maxPerMinute")
    start_at = raw.get("startAt")
    return {
        "max_per_minute": int(per_minute) if per_minute else None,
        "on_failure_threshold": str(raw.get("onFailureThreshold") or "pause"),
        "start_at": datetime.fromisoformat(start_at) if start_at else None,
    }


def _staggered_strategies(s: Mapping[str, Any]) -> dict[str, Any]:
    steps = s.get("batches")
    gate = s.get("successGatePercent")
    return {
        "batches": tuple(steps) if steps else None,
        "ramp": s.get("ramp") or None,
        "success_gate_percent": float(gate) if gate is not None else None,
        "failure_basis": str(s.get("failureBasis") or "targets"),
        "min_finished_for_percent": int(s.get("minFinishedForPercent") or 0),
    }
