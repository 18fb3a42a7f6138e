"""Readiness: is the store reachable and its schema at the newest migration?

One `Readiness` per coordinator answers `/readyz` and keeps the gRPC health service in step:
while the store cannot be reached, the overall and per-service statuses are NOT_SERVING, so a
load balancer stops sending agents and operators to a replica that can only answer 503.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text

from coordinator.app import App
from coordinator.store.db import MIGRATIONS, Store
from coordinator.store.schema_version import code_heads, store_heads

log = logging.getLogger("convoy.health")

CHECK_INTERVAL_S = 2.0
"""How often the background check refreshes the gRPC health status."""


@dataclass(frozen=True)
class ReadyState:
    ready: bool
    """True when the store answered and its schema is at the newest revision."""
    store: str
    """`ok`, or why the store is not usable (one line)."""
    migrations: str
    """`current`, `behind (at X, want Y)`, or `unknown` when the store did not answer."""


def migration_heads() -> set[str]:
    """The newest revision(s) the code ships (read from the migration scripts, no database)."""
    return set(code_heads(MIGRATIONS / "versions"))


def check_store(store: Store, heads: set[str]) -> ReadyState:
    """Blocking: one short read on the store (SELECT 1, then the Alembic version)."""
    try:
        with store.read_engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = store_heads(conn)
    except Exception as exc:  # noqa: BLE001 - any failure to read means "not ready", with its reason
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ReadyState(False, f"unreachable: {reason}", "unknown")
    if current != heads:
        at = ",".join(sorted(current)) or "none"
        return ReadyState(False, "ok", f"behind (at {at}, want {','.join(sorted(heads))})")
    return ReadyState(True, "ok", "current")


# Called with True (serving) or False (not serving) whenever readiness changes.
StatusSink = Callable[[bool], Awaitable[None]]


class Readiness:
    def __init__(self, app: App, sink: StatusSink | None = None) -> None:
        self.app = app
        self._sink = sink
        self._heads = migration_heads()
        self.last: ReadyState | None = None

    async def check(self) -> ReadyState:
        """Check now; tell the sink if readiness changed since the last check."""
        state = await asyncio.to_thread(check_store, self.app.store, self._heads)
        previous, self.last = self.last, state
        if previous is None or previous.ready != state.ready:
            if not state.ready:
                log.warning("not ready: store %s, migrations %s", state.store, state.migrations)
            elif previous is not None:
                log.info("ready again: store reachable, migrations current")
            if self._sink is not None:
                await self._sink(state.ready)
        return state

    async def loop(self) -> None:
        """Runs until cancelled: keeps the gRPC health status in step with the store."""
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the check itself must never end the loop
                log.exception("readiness check failed")
            # Wall-clock on purpose, not app.clock: readiness is about the real store now, and a
            # coordinator under a FakeClock must still notice its store going away.
            await asyncio.sleep(CHECK_INTERVAL_S)
