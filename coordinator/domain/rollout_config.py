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

    def next_batch_due(self, batch_finished_at: datetime) -> datetime:
        return batch_finished_at + timedelta(minutes=self.batch_delay_minutes)


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
            ),
            respect_maintenance_windows=bool(raw.get("respectMaintenanceWindows")),
            retry=RetryPolicy(
                max_retries=int(r.get("maxRetries") or 0),
                backoff_minutes=tuple(float(v) for v in backoff) if backoff else (5.0,),
            ),
            install_timeout_minutes=float(timeout) if timeout else None,
        )
