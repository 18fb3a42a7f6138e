"""staggered: 10,000 devices in 100 batches with no delay; the engine's time per batch
transition: the one `reconcile` transaction that sees batch k finished, starts batch k+1 and
dispatches its devices (set-based). Driven directly against a SQLite Store: each batch's
devices report `completed` in one apply_reports transaction, then the engine reconciles."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.common import Result, median
from bench.fixtures import new_deployment, seed_devices
from common.clock import utcnow
from coordinator.engine import rollout
from coordinator.engine.rollout import Report
from coordinator.store.db import Store


def one_run(work: Path, n: int, batches: int) -> dict[str, float]:
    d = work / "staggered"
    shutil.rmtree(d, ignore_errors=True)
    store = Store.open(None, d)
    try:
        who, client_id = seed_devices(store, n)
        t = time.monotonic()
        dep = new_deployment(store, who, client_id, batch_size=max(1, n // batches))
        init = time.monotonic() - t
        with store.tx() as s:
            res = rollout.reconcile(s, dep, utcnow())
        transitions: list[float] = []
        reports_s: list[float] = []
        while res.dispatched:
            reports = [Report(j.device_id, j.job_id, "completed", 0, "ok\n") for j in res.dispatched]
            t = time.monotonic()
            with store.tx() as s:
                rollout.apply_reports(s, reports, utcnow())
            reports_s.append(time.monotonic() - t)
            t = time.monotonic()
            with store.tx() as s:
                res = rollout.reconcile(s, dep, utcnow())
            transitions.append(time.monotonic() - t)
        if res.status != "completed" or len(transitions) != batches:
            raise RuntimeError(f"staggered run ended {res.status} after {len(transitions)} transitions")
        transitions.sort()
        return {"median": median(transitions), "p99": transitions[int(len(transitions) * 0.99) - 1],
                "max": transitions[-1], "total": sum(transitions), "initialize": init,
                "report_tx": median(reports_s)}
    finally:
        store.close()
        shutil.rmtree(d, ignore_errors=True)


def run(work: Path, n: int, batches: int, runs: int) -> Result:
    res = Result("staggered", f"{n:,} devices, {batches} batches of {n // batches}, batchDelayMinutes 0, SQLite. "
                 f"Per transition: one reconcile transaction that closes batch k, starts k+1 and dispatches it. "
                 f"Median of {runs} runs.")
    rs = [one_run(work, n, batches) for _ in range(runs)]
    res.add("engine time per batch transition (median)", f"{median([r['median'] for r in rs]) * 1000:.1f} ms")
    res.add("per batch transition (p99 / max)", f"{median([r['p99'] for r in rs]) * 1000:.1f} / "
            f"{median([r['max'] for r in rs]) * 1000:.1f} ms")
    res.add(f"all {batches} transitions", f"{median([r['total'] for r in rs]):.2f} s")
    res.add(f"initialize (resolve + plan + {n:,} records) + start", f"{median([r['initialize'] for r in rs]):.2f} s")
    res.add(f"one batch's {n // batches} completed reports, one transaction", f"{median([r['report_tx'] for r in rs]) * 1000:.1f} ms")
    return res
