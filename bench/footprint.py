"""footprint: coordinator RSS per connected idle agent (simulated, 1,000 and 10,000), and one
real idle `convoy agent run` process: its RSS and CPU over a quiet period."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil

from bench.common import (
    CONVOY,
    ROOT,
    Admin,
    Coordinator,
    FleetTemplate,
    Result,
    Simulator,
    point_credentials,
    stop_process,
    wait_online,
)


def coordinator_per_agent(tpl: FleetTemplate, work: Path, count: int) -> tuple[float, float, float]:
    """(RSS before, RSS with `count` idle agents connected, bytes per agent)."""
    coord, sim_dir = tpl.fresh(work / "footprint-run")
    coord.start()
    sim = None
    try:
        point_credentials(sim_dir, coord.target)
        time.sleep(2.0)
        before = coord.rss()
        sim = Simulator(coord.target, tpl.token, count, sim_dir)
        sim.wait("connected", 600)
        wait_online(coord.sqlite_path, count)
        time.sleep(5.0)  # a few idle seconds: heartbeats and presence writes settle
        after = coord.rss()
        return before, after, (after - before) / count
    finally:
        if sim is not None:
            sim.stop()
        coord.stop()


def real_agent_idle(work: Path, seconds: float, tls: bool = False) -> tuple[float, float, float]:
    """(peak RSS, RSS at the end, CPU-seconds over `seconds`) of one idle `convoy agent run`;
    `tls`: the default install (pinned CA, device key, agent calls over mutual TLS)."""
    where = work / f"footprint-real{'-tls' if tls else ''}"
    coord = Coordinator(where / "coordinator")
    coord.insecure = not tls
    coord.bootstrap()
    coord.start()
    agent = None
    try:
        admin = Admin(coord.target, coord.token, coord.client_id, ca=coord.ca_file)
        token = admin.enrollment_token()
        admin.close()
        state = where / "agent"
        subprocess.run([*CONVOY, "agent", "install", "--server", coord.target, "--token", token, "--state-dir",
                        str(state), "--machine-id", "bench-footprint", "--no-service", *coord.trust], check=True, cwd=ROOT,
                       capture_output=True)
        agent = subprocess.Popen([*CONVOY, "agent", "run", "--state-dir", str(state), "--log-level", "warning"],
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_online(coord.sqlite_path, 1, 30)
        time.sleep(2.0)
        ps = psutil.Process(agent.pid)
        cpu0 = sum(ps.cpu_times()[:2])
        peak = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            peak = max(peak, ps.memory_info().rss)
            time.sleep(0.5)
        cpu = sum(ps.cpu_times()[:2]) - cpu0
        return peak, ps.memory_info().rss, cpu
    finally:
        stop_process(agent)
        coord.stop()


def run(tpl: FleetTemplate, work: Path, counts: list[int], idle_seconds: float) -> Result:
    res = Result("footprint", f"Coordinator subprocess (SQLite) RSS before and after {', '.join(f'{c:,}' for c in counts)} "
                 f"simulated agents connect and sit idle (heartbeats every 15 s); one real `convoy agent run` "
                 f"process, enrolled and idle, watched for {idle_seconds:.0f} s.")
    for count in counts:
        before, after, per = coordinator_per_agent(tpl, work, count)
        res.add(f"coordinator RSS, {count:,} idle agents", f"{after / 2**20:.0f} MB (from {before / 2**20:.0f} MB)")
        res.add(f"coordinator memory per agent at {count:,}", f"{per / 1024:.0f} KB", "≤ 100 KB", per <= 100 * 1024)
    peak, end, cpu = real_agent_idle(work, idle_seconds)
    res.add("idle `convoy agent run` RSS (peak), plaintext", f"{peak / 2**20:.1f} MB", "≤ 40 MB", peak <= 40 * 2**20)
    res.add(f"idle agent CPU over {idle_seconds:.0f} s", f"{cpu:.2f} CPU-s ({100 * cpu / idle_seconds:.2f}% of a core)")
    tpeak, _tend, tcpu = real_agent_idle(work, idle_seconds, tls=True)
    res.add("idle `convoy agent run` RSS (peak), TLS with its device certificate (the default)",
            f"{tpeak / 2**20:.1f} MB", "≤ 40 MB", tpeak <= 40 * 2**20)
    res.add(f"idle agent CPU over {idle_seconds:.0f} s, TLS", f"{tcpu:.2f} CPU-s")
    res.notes.append("A real agent process holds one channel and one stream; its coordinator-side cost is the "
                     "per-agent figure above (the same Connect servicer serves both).")
    return res
