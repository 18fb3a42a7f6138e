"""Signals between coordinator replicas that share one store: "look again", never the data.

Two kinds, both carrying ids only:

- devices: these devices' jobs changed. Whichever replica holds a device's stream re-reads the
  device's desired state (`engine.rollout.device_jobs`) and sends it; the agent's journal runs a
  job delivered twice once, so a resend is harmless.
- deployments: these deployments changed. Every replica wakes its watchers (WatchDeployment, the
  REST event stream) and its engine, which re-reads the earliest stored due time.

The store stays the truth: a signal only says where to look. A replica never acts on its own
signals (it did the work locally). Two ways to send:

- `in_transaction(s, ...)`, for changes agents must hear of (jobs dispatched or withdrawn): the
  signal is part of the change's transaction (PostgreSQL delivers a NOTIFY at commit and drops it
  on rollback), so a replica dying right after its commit cannot lose it;
- `publish_*`, fire-and-forget from the event loop after commit (watchers and engines woken):
  ids are gathered and sent by one task, so a burst of changes is a few messages.

PostgreSQL (`PgSignals`): LISTEN/NOTIFY on the store itself, through psycopg 3. One dedicated
autocommit connection LISTENs, another sends `pg_notify`; payloads are `origin|id,id,...`, cut
under PostgreSQL's 8000-byte limit. When the listening connection breaks (PostgreSQL restarted,
the network dropped) it reconnects with jittered backoff, and after every (re)connect the
subscriber's `resync` runs: every locally connected device is sent its desired state again and
every watcher woken, since notifications sent meanwhile were lost.

SQLite (`LocalSignals`): one process, the same interface in memory; instances on the same
database URL in one process (tests) hear each other.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("convoy.signals")

DEVICES = "convoy_devices"
DEPLOYMENTS = "convoy_deployments"
CHANNELS = (DEVICES, DEPLOYMENTS)
PAYLOAD_LIMIT = 7900
"""Bytes per NOTIFY payload (PostgreSQL refuses 8000 and more)."""
PING_S = 10.0
"""The listening connection is checked this often when quiet (a dead peer is found in seconds)."""


@dataclass
class Subscriber:
    """What a replica does with signals from the others (set by the server: the hub and the engine)."""
    devices: Callable[[list[str]], None] = lambda ids: None
    deployments: Callable[[list[str]], None] = lambda ids: None
    resync: Callable[[], None] = lambda: None
    """Signals may have been lost (the listener reconnected): look at everything local again."""


def payloads(origin: str, ids: Iterable[str], limit: int = PAYLOAD_LIMIT) -> list[str]:
    """`origin|id,id,...` strings, each at most `limit` bytes (ids are ASCII uuids)."""
    out: list[str] = []
    head = f"{origin}|"
    current: list[str] = []
    size = len(head.encode())
    for item in sorted(set(ids)):
        n = len(item.encode()) + (1 if current else 0)
        if current and size + n > limit:
            out.append(head + ",".join(current))
            current, size = [], len(head.encode())
            n = len(item.encode())
        current.append(item)
        size += n
    if current:
        out.append(head + ",".join(current))
    return out


def parse(payload: str) -> tuple[str, list[str]]:
    origin, _, rest = payload.partition("|")
    return origin, [x for x in rest.split(",") if x]


class Signals:
    """The interface: publish after commit, from the event loop; subscribe once."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.subscriber = Subscriber()
        self.received = 0
        self.published = 0

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscriber = subscriber

    def publish_devices(self, device_ids: Iterable[str]) -> None:
        raise NotImplementedError

    def publish_deployments(self, deployment_ids: Iterable[str]) -> None:
        raise NotImplementedError

    def in_transaction(self, s: Any, devices: Iterable[str] = (), deployments: Iterable[str] = ()) -> None:
        """Signal these ids when the session `s` commits (nothing if it rolls back)."""
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def _deliver(self, channel: str, payload: str) -> None:
        origin, ids = parse(payload)
        if origin == self.origin or not ids:
            return
        self.received += 1
        try:
            if channel == DEVICES:
                self.subscriber.devices(ids)
            elif channel == DEPLOYMENTS:
                self.subscriber.deployments(ids)
        except Exception:  # noqa: BLE001 - a failing handler must not end the listener
            log.exception("handling a %s signal failed", channel)

    def stats(self) -> dict[str, Any]:
        return {"backend": type(self).__name__, "published": self.published, "received": self.received}


# --- one process ------------------------------------------------------------------------------

_LOCAL: dict[str, set[LocalSignals]] = {}


class LocalSignals(Signals):
    def __init__(self, origin: str, url: str) -> None:
        super().__init__(origin)
        self.url = url
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        _LOCAL.setdefault(self.url, set()).add(self)
        self.subscriber.resync()

    async def close(self) -> None:
        _LOCAL.get(self.url, set()).discard(self)

    def _send(self, channel: str, ids: Iterable[str]) -> None:
        for payload in payloads(self.origin, ids):
            self.published += 1
            for peer in list(_LOCAL.get(self.url, ())):
                if peer is not self and peer._loop is not None and not peer._loop.is_closed():
                    peer._loop.call_soon_threadsafe(peer._deliver, channel, payload)

    def publish_devices(self, device_ids: Iterable[str]) -> None:
        self._send(DEVICES, device_ids)

    def publish_deployments(self, deployment_ids: Iterable[str]) -> None:
        self._send(DEPLOYMENTS, deployment_ids)

    def in_transaction(self, s: Any, devices: Iterable[str] = (), deployments: Iterable[str] = ()) -> None:
        from sqlalchemy import event

        devices, deployments = list(devices), list(deployments)
        if not (devices or deployments):
            return

        def committed(_session: Any) -> None:
            self._send(DEVICES, devices)
            self._send(DEPLOYMENTS, deployments)
        event.listen(s, "after_commit", committed, once=True)


# --- PostgreSQL -------------------------------------------------------------------------------

def libpq_url(sqlalchemy_url: str) -> str:
    """`postgresql+psycopg://…` (SQLAlchemy) as a URL libpq takes."""
    from sqlalchemy.engine import make_url

    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgSignals(Signals):
    def __init__(self, origin: str, url: str, *, backoff_max_s: float = 5.0) -> None:
        super().__init__(origin)
        self.dsn = libpq_url(url)
        self.backoff_max_s = backoff_max_s
        self._pending: dict[str, set[str]] = {DEVICES: set(), DEPLOYMENTS: set()}
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.listening = asyncio.Event()
        self.reconnects = 0

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen_loop(), name="signals-listen"),
                       asyncio.create_task(self._publish_loop(), name="signals-publish")]
        try:  # the first LISTEN before serving, when PostgreSQL answers; never block start on it
            await asyncio.wait_for(self.listening.wait(), 10)
        except TimeoutError:
            log.warning("not listening for other replicas' signals yet (PostgreSQL not answering); retrying")

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "listening": self.listening.is_set(), "reconnects": self.reconnects}

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _add(self, channel: str, ids: Iterable[str]) -> None:
        before = len(self._pending[channel])
        self._pending[channel].update(ids)
        if len(self._pending[channel]) != before:
            self._ready.set()

    def publish_devices(self, device_ids: Iterable[str]) -> None:
        self._add(DEVICES, device_ids)

    def publish_deployments(self, deployment_ids: Iterable[str]) -> None:
        self._add(DEPLOYMENTS, deployment_ids)

    def in_transaction(self, s: Any, devices: Iterable[str] = (), deployments: Iterable[str] = ()) -> None:
        from sqlalchemy import text

        for channel, ids in ((DEVICES, devices), (DEPLOYMENTS, deployments)):
            for payload in payloads(self.origin, ids):
                s.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})
                self.published += 1

    async def _connect(self) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, connect_timeout=5,
                                                     application_name=f"convoy-signals {self.origin}"[:63])

    def _backoff(self, failures: int) -> float:
        base = min(self.backoff_max_s, 0.2 * 2 ** min(failures, 8))
        return base * random.uniform(0.5, 1.0)

    async def _listen_loop(self) -> None:
        failures = 0
        while True:
            conn = None
            try:
                conn = await self._connect()
                for channel in CHANNELS:
                    await conn.execute(f"LISTEN {channel}")
                if failures or self.listening.is_set():
                    self.reconnects += 1
                    log.info("listening for other replicas' signals again; resyncing local devices and watchers")
                failures = 0
                self.listening.set()
                self.subscriber.resync()  # whatever was sent while we were not listening is lost
                while True:
                    async for n in conn.notifies(timeout=PING_S):
                        self._deliver(n.channel, n.payload)
                    await conn.execute("SELECT 1")  # quiet: is the connection still there?
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - PostgreSQL away: reconnect, with backoff
                self.listening.clear()
                failures += 1
                delay = self._backoff(failures)
                log.warning("signal listener lost its PostgreSQL connection (%s); reconnecting in %.1fs",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__, delay)
                await asyncio.sleep(delay)
            finally:
                if conn is not None:
                    try:
                        await conn.close()
                    except Exception:  # noqa: BLE001
                        pass

    async def _publish_loop(self) -> None:
        conn = None
        failures = 0
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch = {ch: ids for ch, ids in self._pending.items() if ids}
            self._pending = {DEVICES: set(), DEPLOYMENTS: set()}
            try:
                if conn is None or conn.closed:
                    conn = await self._connect()
                for channel, ids in batch.items():
                    for payload in payloads(self.origin, ids):
                        await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                        self.published += 1
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep what was not sent; the store is the truth anyway
                for channel, ids in batch.items():
                    self._pending[channel] |= ids
                failures += 1
                delay = self._backoff(failures)
                log.warning("publishing signals failed (%s); retrying in %.1fs",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__, delay)
                if conn is not None:
                    try:
                        await conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                    conn = None
                await asyncio.sleep(delay)
                self._ready.set()


def open_signals(url: str, origin: str) -> Signals:
    """The signals for a store URL: LISTEN/NOTIFY on PostgreSQL, in memory on SQLite."""
    from sqlalchemy.engine import make_url

    if make_url(url).get_backend_name() == "postgresql":
        return PgSignals(origin, url)
    return LocalSignals(origin, url)
