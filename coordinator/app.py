"""What every API door and the engine share: the store, the clock and the settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from common.clock import Clock, SystemClock
from coordinator.config import Settings
from coordinator.store.db import Store

T = TypeVar("T")


@dataclass
class App:
    store: Store
    settings: Settings = field(default_factory=Settings)
    clock: Clock = field(default_factory=SystemClock)
    # Set by the server once built; typed loosely to keep this module free of cycles.
    engine: Any = None
    hub: Any = None
    signals: Any = None
    """Cross-replica signals (coordinator/store/signals.py); None: this process is alone."""
    replica_id: str = ""
    """This coordinator among its replicas: logs, the engine's audit actor, health answers."""
    webhook_keys: Any = None
    """The key webhook secrets are encrypted with (coordinator/webhook_keys.py), set at start."""
    webhooks: Any = None
    """The webhook delivery worker (coordinator/service/webhook_delivery.py)."""
    uploads: Any = None
    """Artifact uploads' own threads and admission (coordinator/api/upload_stream.py)."""

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store function off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)
