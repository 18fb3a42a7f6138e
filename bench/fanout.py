"""fan-out: N simulated agents, an immediate no-op script deployment to all of them; time from
StartDeployment to the deployment `completed` (every record terminal and committed), devices/s
and the coordinator's CPU-seconds. Same run: the bare grpc.aio baseline (bench/baseline.py)
exchanging the same messages over the same channel layout; the ratio of the two. And the same
fan-out with TLS (the coordinator's default; the simulated agents trust its CA), beside the
plaintext one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    Admin,
    FleetTemplate,
    LineReader,
    Result,
    Simulator,
    median,
    point_credentials,
    stop_process,
    wait_online,
)

CHANNELS = 8


def one_run(tpl: FleetTemplate, work: Path, count: int, tls: bool = False) -> dict[str, float]:
    coord, sim_dir = tpl.fresh(work / "fanout-run")
    coord.insecure = not tls
    coord.start()
    sim = None
    try:
        point_credentials(sim_dir, coord.target)
        sim = Simulator(coord.target, tpl.token, count, sim_dir, "--channels", str(CHANNELS), ca=coord.ca_file)
        connected = sim.wait("connected", 600)
        wait_online(coord.sqlite_path, count)
        admin = Admin(coord.target, coord.token, coord.client_id, ca=coord.ca_file)
        dep = admin.create(admin.script("true"))
        time.sleep(1.0)  # let the presence and initialize writes settle
        cpu0, sim_cpu0 = coord.cpu_seconds(), sim.cpu_seconds()
        t0 = time.monotonic()
        admin.start(dep)
        d = admin.wait_done(dep, 600, interval=0.05)
        seconds = time.monotonic() - t0
        cpu = coord.cpu_seconds() - cpu0
        sim_cpu = sim.cpu_seconds() - sim_cpu0
        admin.close()
        if d.status != "completed" or d.progress.completed != count:
            raise RuntimeError(f"fan-out ended {d.status} with {d.progress.completed}/{count} completed")
        return {"seconds": seconds, "cpu": cpu, "sim_cpu": sim_cpu, "connect": float(connected["seconds"])}
    finally:
        if sim is not None:
            sim.stop()
        coord.stop()


def baseline_run(count: int) -> dict[str, Any]:
    srv = subprocess.Popen([sys.executable, "-m", "bench.baseline", "server"], stdout=subprocess.PIPE, text=True,
                           cwd=ROOT)
    try:
        assert srv.stdout is not None
        port = LineReader(srv.stdout).wait("listening", 30)["grpc_port"]
        out = subprocess.run([sys.executable, "-m", "bench.baseline", "client", "--target", f"127.0.0.1:{port}",
                              "--count", str(count), "--channels", str(CHANNELS)],
                             capture_output=True, text=True, cwd=ROOT, timeout=900, check=True)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        stop_process(srv)


def run(tpl: FleetTemplate, work: Path, count: int, runs: int) -> Result:
    res = Result("fan-out", f"{count:,} simulated agents (`convoy agent simulate`, {CHANNELS} channels or more: at most 900 streams on each; each its own TCP connection, one process) "
                 f"on a coordinator subprocess (SQLite, plaintext; then the same with TLS); an immediate deployment of a no-op script (`true`) to all; "
                 f"time from StartDeployment to status `completed` (every record terminal and committed). "
                 f"Baseline: bare grpc.aio bidi streams, same count and connections, same messages per device "
                 f"(Job down; received, installing, completed up; Ack down). Median of {runs} runs each.")
    fan = [one_run(tpl, work, count) for _ in range(runs)]
    base = [baseline_run(count) for _ in range(runs)]
    tls = [one_run(tpl, work, count, tls=True) for _ in range(runs)]
    t = median([f["seconds"] for f in fan])
    b = median([float(x["seconds"]) for x in base])
    res.add("time to 100% completed", f"{t:.2f} s", "≤ 10 s" if count >= 10_000 else "", t <= 10 if count >= 10_000 else None)
    res.add("devices/s", f"{count / t:,.0f}")
    res.add("coordinator CPU-seconds", f"{median([f['cpu'] for f in fan]):.1f}")
    res.add("simulator CPU-seconds", f"{median([f['sim_cpu'] for f in fan]):.1f}")
    res.add("bare grpc.aio baseline", f"{b:.2f} s ({count * 5 / b:,.0f} messages/s)")
    res.add("ratio to baseline", f"{t / b:.1f}×", "≤ 2×", t / b <= 2)
    res.add("streams opened (waves of 100, 10 ms apart)", f"{median([f['connect'] for f in fan]):.1f} s")
    tt = median([f["seconds"] for f in tls])
    res.add("with TLS: time to 100% completed", f"{tt:.2f} s")
    res.add("with TLS: coordinator CPU-seconds", f"{median([f['cpu'] for f in tls]):.1f}")
    res.add("TLS ÷ plaintext", f"{tt / t:.2f}×")
    res.raw = {"fanout": fan, "baseline": base, "tls": tls}
    return res
