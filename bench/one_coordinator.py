"""one coordinator: as many simulated agents as one coordinator holds (aim: 100,000).

Workload (`make bench-one`, or `python -m bench.one_coordinator --n 100000`):
1. One `convoy coordinator serve` subprocess on the embedded default store (SQLite; `--pg` for
   PostgreSQL); N devices written straight into the store with known credentials (enrolment has
   its own benchmark).
2. A ramped connection: SIMS `convoy agent simulate` processes (8 channels each or more, at most
   900 streams a channel, every channel its own TCP connection) open their streams in waves; the
   figure is the time until the store says all N are online.
3. Idle: coordinator RSS growth per agent, and its CPU per second while the fleet sits idle
   (heartbeats only) for IDLE seconds.
4. An immediate deployment of a no-op script (`true`) to all N; the time from StartDeployment to
   `completed`, and how many completed.

`--profile FILE` records py-spy (`pip install py-spy`; not a dependency) on the coordinator from
StartDeployment to `completed`, raw stacks to FILE (fold them with bench.profile_fanout.fold).

No baseline exists for this one (there is no bare-gRPC coordinator that holds a fleet); the
fan-out benchmark has that comparison at 10,000.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.common import Result, py_spy, py_spy_stop
from bench.scaleout import Cluster, create_database, drop_database, online_count, say, seed_fleet

FULL_N = 100_000
SIMS = 3


def run(work: Path, n: int, sims: int, idle_s: float, heartbeat: str, pg: bool, prof: Path | None = None) -> Result:
    db_name = f"convoy_one_{int(time.time())}"
    url = create_database(db_name) if pg else f"sqlite:///{work / 'replica-0' / 'convoy.db'}"
    store = "PostgreSQL" if pg else "SQLite"
    res = Result("one coordinator", f"One coordinator subprocess ({store}); {n:,} simulated agents in {sims} "
                 "`convoy agent simulate` processes (8 channels each or more, every channel its own TCP "
                 "connection, streams opened in waves), devices written straight into the store, heartbeats "
                 f"every {heartbeat}; idle for {idle_s:.0f} s; then an immediate deployment of a no-op script "
                 "(`true`) to all; time from StartDeployment to `completed`. Client, simulators and "
                 "coordinator share the machine's 2 cores.")
    cluster = Cluster(work, url, 1)
    coord = cluster.coords[0]
    coord.env = {"CONVOY_HEARTBEAT_INTERVAL": heartbeat}
    try:
        cluster.bootstrap()
        agents = seed_fleet(url, coord.client_id, n)
        coord.start()
        rss_idle = coord.rss()
        limit = max(300.0, n / 40)
        say(f"coordinator up ({rss_idle / 2**20:.0f} MB); connecting {n:,} agents from {sims} simulators")
        try:
            connect_s = cluster.connect(agents, [coord.target] * sims, limit)
            res.add("streams opened and online (ramped)", f"{connect_s:.1f} s ({n / connect_s:,.0f}/s)",
                    f"all {n:,}", True)
        except (TimeoutError, RuntimeError) as exc:
            have = online_count(url)
            res.add("streams opened and online (ramped)", f"{have:,} of {n:,} online: {exc}", f"all {n:,}", False)
        online = online_count(url)
        held = coord.rss()
        per_agent = (held - rss_idle) / max(online, 1)
        res.add("coordinator RSS: idle without agents / holding the fleet",
                f"{rss_idle / 2**20:.0f} / {held / 2**20:.0f} MB")
        res.add("coordinator memory per agent (RSS growth / agents online)", f"{per_agent / 1024:.0f} KB",
                "≤ 100 KB", per_agent <= 100 * 1024)
        cpu0, t0 = coord.cpu_seconds(), time.monotonic()
        time.sleep(idle_s)
        idle_cpu = (coord.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        res.add(f"coordinator CPU while the fleet is idle ({idle_s:.0f} s, heartbeats only)",
                f"{idle_cpu * 100:.0f}% of a core ({idle_cpu * 1e6 / max(online, 1):.1f} µs per agent per s)")
        say(f"{online:,} online; deploying")
        cpu1 = coord.cpu_seconds()
        spy = py_spy(coord.proc.pid, prof) if prof is not None and coord.proc is not None else None
        try:
            took, d = cluster.deploy(coord, limit)
        finally:
            if spy is not None:
                py_spy_stop(spy)
        ok = d.status == "completed" and d.progress.completed == n
        res.add("immediate no-op deployment to all: time to 100% completed",
                f"{took:.1f} s ({n / took:,.0f} devices/s)" if ok else
                f"{d.status} after {took:.1f} s, {d.progress.completed:,}/{n:,} completed",
                "every device", ok)
        res.add("deployment: completed / failed / skipped",
                f"{d.progress.completed:,} / {d.progress.failed:,} / {d.progress.skipped:,}")
        res.add("coordinator CPU-seconds for the deployment", f"{coord.cpu_seconds() - cpu1:.1f}")
        res.raw.update({"n": n, "online": online, "deploy_s": took, "per_agent_bytes": per_agent,
                        "idle_cpu": idle_cpu})
    finally:
        cluster.stop()
        if pg:
            drop_database(db_name)
    return res


def main(argv: list[str] | None = None) -> int:
    from bench.run_all import run_standalone

    p = argparse.ArgumentParser(prog="python -m bench.one_coordinator")
    p.add_argument("--n", type=int, default=FULL_N, help=f"simulated agents (default {FULL_N:,})")
    p.add_argument("--sims", type=int, default=SIMS, help=f"simulator processes (default {SIMS})")
    p.add_argument("--idle", type=float, default=30.0, help="seconds the connected fleet sits idle (default 30)")
    p.add_argument("--heartbeat", default="15s", help="the coordinator's heartbeat interval (default 15s)")
    p.add_argument("--pg", action="store_true", help="PostgreSQL (127.0.0.1:5432 or CONVOY_BENCH_PG), not SQLite")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--profile", type=Path,
                   help="py-spy the coordinator during the deployment (pip install py-spy): raw stacks to this file")
    args = p.parse_args(argv)
    write = not args.no_write and args.n >= FULL_N
    return run_standalone("convoy-one-", lambda work: run(work, args.n, args.sims, args.idle, args.heartbeat, args.pg,
                                                          args.profile), "one" if write else None)

if __name__ == "__main__":
    sys.exit(main())
