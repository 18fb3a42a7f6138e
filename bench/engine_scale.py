"""Engine scale traps (issue: engine v2), on the store directly (SQLite, one writer):

1. restart after downtime: N in-flight records whose install deadline passed while the
   coordinator was down; the first engine pass of the restarted engine (silence counted from its
   start) must take <= 1 s and fail nothing;
2. a reconcile that changes nothing on a deployment of M records (a staggered rollout with its
   first batch in flight and the rest planned): <= 5 ms, however many records there are.

    python -m bench.engine_scale --restart 10000 --noop 100000
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.common import Result
from coordinator.auth import authenticate_api
from coordinator.engine.rollout import EngineParams, Report, apply_reports, reconcile
from coordinator.service import deployments as svc
from coordinator.service import payloads
from coordinator.service.tenancy import bootstrap
from coordinator.store import models as m
from coordinator.store.db import Store

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _deployment(store: Store, n: int, rollout: dict[str, Any]) -> tuple[str, list[str]]:
    boot = bootstrap(store, "bench", T0, force=True)
    with store.tx() as s:
        who = authenticate_api(s, boot["token"])
        devices = [{"id": str(uuid.uuid4()), "client_id": boot["client_id"], "machine_id": f"m{i}",
                    "credential_hash": uuid.uuid4().hex + uuid.uuid4().hex, "online": True, "last_seen_at": T0,
                    "created_at": T0, "updated_at": T0, "hostname": f"h{i}", "os": "linux", "os_version": "12",
                    "arch": "x86_64", "cpu_count": 1, "memory_bytes": 0, "disks": [], "ip_addresses": [],
                    "tags": [], "site": "", "agent_version": "bench", "maintenance_windows": []} for i in range(n)]
        for i in range(0, n, 5000):
            s.execute(insert(m.Device), devices[i:i + 5000])
        script = payloads.create_script(s, who, boot["client_id"], "x", "sh", "echo ok", "", "", T0)
        dep = svc.create(s, who, {"name": "bench", "type": "script", "payload": {"scriptId": script["id"]},
                                  "targetType": "all", "rolloutConfig": rollout}, T0)
    with store.tx() as s:
        who = authenticate_api(s, boot["token"])
        svc.initialize(s, who, dep["id"], T0)
        svc.start(s, who, dep["id"], T0)
    with store.tx() as s:
        jobs = reconcile(s, dep["id"], T0).dispatched
    with store.tx() as s:  # every agent acknowledged and started its job
        apply_reports(s, [Report(j.device_id, j.job_id, "installing") for j in jobs], T0)
    return dep["id"], [j.job_id for j in jobs]


def restart_pass(work: Path, n: int) -> tuple[float, dict[str, int]]:
    store = Store.open(f"sqlite:///{work / 'restart.db'}")
    try:
        dep_id, _ = _deployment(store, n, {"type": "immediate", "installTimeoutMinutes": 30})
        later = T0 + timedelta(hours=2)  # down for two hours: every deadline has passed
        params = EngineParams(default_timeout_minutes=30, silence_floor=later)
        start = time.perf_counter()
        with store.tx() as s:
            reconcile(s, dep_id, later, params=params)
        seconds = time.perf_counter() - start
        with store.read() as s:
            d = s.get(m.Deployment, dep_id)
            assert d is not None
            counts = {"running": d.n_running, "failed": d.n_failed, "pending": d.n_pending}
        return seconds, counts
    finally:
        store.close()


def noop_reconcile(work: Path, n: int, samples: int = 50) -> float:
    store = Store.open(f"sqlite:///{work / 'noop.db'}")
    try:
        first = max(1, n // 100)
        dep_id, _ = _deployment(store, n, {"type": "staggered", "staggered": {"batchSize": first}})
        now = T0 + timedelta(minutes=1)
        with store.tx() as s:  # the reports moved the batch to installing: let the engine see it once
            reconcile(s, dep_id, now)
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            with store.tx() as s:
                result = reconcile(s, dep_id, now)
            times.append(time.perf_counter() - start)
            assert not result.changed and not result.dispatched
        return statistics.median(times)
    finally:
        store.close()


def run(work: Path, restart_n: int, noop_n: int) -> Result:
    work.mkdir(parents=True, exist_ok=True)
    r = Result("engine scale", f"SQLite on local disk, the store directly. Restart: {restart_n:,} records installing, "
                               f"the coordinator down 2 h (past every 30-minute deadline), first engine pass after "
                               f"restart. No-op: a staggered deployment of {noop_n:,} records, batch 1 "
                               f"({max(1, noop_n // 100):,}) in flight, median of 50 reconciles that change nothing.")
    seconds, counts = restart_pass(work, restart_n)
    r.add(f"first engine pass after restart, {restart_n:,} overdue in-flight records", f"{seconds * 1000:.0f} ms",
          "<= 1 s", seconds <= 1.0)
    r.add("records failed by that pass (the downtime is nobody's silence)", str(counts["failed"]), "0",
          counts["failed"] == 0)
    noop = noop_reconcile(work, noop_n)
    r.add(f"reconcile that changes nothing, {noop_n:,} records", f"{noop * 1000:.2f} ms", "<= 5 ms", noop <= 0.005)
    r.raw = {"restart_s": seconds, "noop_s": noop, **counts}
    return r


def main() -> None:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--restart", type=int, default=10_000)
    p.add_argument("--noop", type=int, default=100_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        run(Path(d), args.restart, args.noop).print()


if __name__ == "__main__":
    main()
