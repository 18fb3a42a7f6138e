"""ingestion: agent status reports through the engine's real report path (Engine.submit, the
flusher, apply_reports: one transaction per tick) against a Store on SQLite and on PostgreSQL.

Workload: N dispatched jobs; each gets `received`, `installing`, `completed` (3N reports),
offered at a fixed rate in 10 ms slices. Report-to-commit latency is from `submit` to the end
of the transaction that wrote it. Also the saturated rate: all 3N reports offered at once."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import PG_ADMIN_URL, Result, median
from bench.fixtures import new_deployment, seed_devices
from common.clock import utcnow
from coordinator.app import App
from coordinator.config import Settings
from coordinator.engine import rollout
from coordinator.engine.reconciler import Engine
from coordinator.engine.rollout import Report
from coordinator.store.db import Store


class Stalled(Exception):
    """No report committed for 30 s (seen twice in ~20 runs, not yet explained): the run is
    repeated, and the diagnostics are printed."""


class TimedEngine(Engine):
    """The engine, noting when each report's transaction committed."""

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.committed: dict[tuple[str, str], float] = {}

    def _apply_reports(self, batch: list[Report], now: datetime) -> rollout.ReportResult:
        out = super()._apply_reports(batch, now)
        t = time.monotonic()
        for rep in batch:
            self.committed[(rep.job_id, rep.state)] = t
        return out


def prepare(store: Store, n: int) -> list[Report]:
    who, client_id = seed_devices(store, n)
    dep = new_deployment(store, who, client_id)
    with store.tx() as s:
        res = rollout.reconcile(s, dep, utcnow())
    return [Report(j.device_id, j.job_id, state, 0 if state == "completed" else None, "ok\n" if state == "completed" else "")
            for state in ("received", "installing", "completed") for j in res.dispatched]


async def drive(store: Store, reports: list[Report], rate: float | None) -> dict[str, float]:
    app = App(store=store, settings=Settings())
    engine = TimedEngine(app)
    app.engine = engine
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0.5)  # the first reconcile pass
    submitted: dict[tuple[str, str], float] = {}
    t0 = time.monotonic()
    if rate is None:
        for rep in reports:
            submitted[(rep.job_id, rep.state)] = time.monotonic()
            engine.submit(rep)
    else:
        per_slice = max(1, int(rate / 100))
        for i in range(0, len(reports), per_slice):
            due = t0 + (i / rate)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            for rep in reports[i:i + per_slice]:
                submitted[(rep.job_id, rep.state)] = now
                engine.submit(rep)
    progress, progress_at = 0, time.monotonic()
    while len(engine.committed) < len(reports):
        await asyncio.sleep(0.01)
        if task.done():
            raise RuntimeError(f"the engine stopped: {task.exception()!r}")
        if len(engine.committed) != progress:
            progress, progress_at = len(engine.committed), time.monotonic()
        elif time.monotonic() - progress_at > 30:
            stacks = [f"{t.get_name()}: {t.get_stack(limit=3)}" for t in asyncio.all_tasks()]
            raise Stalled(f"{progress} of {len(reports)} reports committed, none for 30 s; engine {engine.stats()}, "
                          f"reports_ready={engine._reports_ready.is_set()}; tasks {stacks}")
    # Cancel until it takes: on Python 3.11 `asyncio.wait_for` (SystemClock.wait) can swallow a
    # cancellation that lands as its inner wait completes, and the engine loop goes on.
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    lat = sorted(engine.committed[k] - submitted[k] for k in submitted)
    last = max(engine.committed.values())
    return {"per_s": len(reports) / (last - t0), "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99) - 1],
            "max": lat[-1]}


def _pg_admin() -> Any:
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def backend_store(backend: str, work: Path, tag: str) -> tuple[Store, Any]:
    if backend == "sqlite":
        d = work / f"ingest-{tag}"
        shutil.rmtree(d, ignore_errors=True)
        return Store.open(None, d), lambda: shutil.rmtree(d, ignore_errors=True)
    name = f"convoy_bench_{os.getpid()}_{tag}"
    eng = _pg_admin()
    with eng.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        with eng.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        eng.dispose()
    return Store.open(url), drop


def measure(backend: str, work: Path, n: int, rate: float | None, runs: int) -> dict[str, float]:
    results = []
    for i in range(runs):
        store, cleanup = backend_store(backend, work, f"{'max' if rate is None else int(rate)}_{i}")
        try:
            reports = prepare(store, n)
            try:
                results.append(asyncio.run(drive(store, reports, rate)))
            except Stalled as exc:
                print(f"  ingestion run stalled, repeating it: {exc}", flush=True)
                store.close()
                cleanup()
                store, cleanup = backend_store(backend, work, f"retry_{i}")
                results.append(asyncio.run(drive(store, prepare(store, n), rate)))
        finally:
            store.close()
            cleanup()
    return {k: median([r[k] for r in results]) for k in results[0]}


def pg_available() -> bool:
    try:
        with _pg_admin().connect() as c:
            c.exec_driver_sql("SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False


def run(work: Path, n: int, rate: float, runs: int) -> Result:
    res = Result("ingestion", f"{n:,} dispatched jobs, 3 reports each ({3 * n:,}), through Engine.submit → the "
                 f"report flusher → apply_reports (one transaction per tick, tick {Settings().report_flush_interval_s * 1000:.0f} ms). "
                 f"Offered at {rate:,.0f}/s, then all at once (saturated). Median of {runs} runs. "
                 "A load offered at 5,000/s cannot measure more than that, so the sustained figure "
                 "counts as met when at least 98% of the offered reports commit at that pace; the "
                 "saturated line is the capacity.")
    backends = ["sqlite"] + (["postgresql"] if pg_available() else [])
    for backend in backends:
        fixed = measure(backend, work, n, rate, runs)
        sat = measure(backend, work, n, None, runs)
        is_sqlite = backend == "sqlite"
        res.add(f"{backend}: sustained at {rate:,.0f}/s offered", f"{fixed['per_s']:,.0f} reports/s",
                "≥ 5,000/s" if is_sqlite else "", fixed["per_s"] >= 5000 * 0.98 if is_sqlite else None)
        res.add(f"{backend}: p99 report→commit at {rate:,.0f}/s", f"{fixed['p99'] * 1000:.0f} ms (p50 {fixed['p50'] * 1000:.0f} ms)",
                "≤ 1 s" if is_sqlite else "", fixed["p99"] <= 1.0 if is_sqlite else None)
        res.add(f"{backend}: saturated", f"{sat['per_s']:,.0f} reports/s (p99 {sat['p99'] * 1000:.0f} ms)")
    if "postgresql" not in backends:
        res.notes.append("PostgreSQL was not reachable; only SQLite was measured.")
    return res
