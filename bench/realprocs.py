"""real processes: N real `convoy agent run` processes (each enrolled with `convoy agent install`,
each with its own state dir, channel and stream) on one coordinator subprocess; a deployment of
the script `echo ok` at once, and in 10% batches with no delay; time from StartDeployment to
100% (status `completed`)."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import CONVOY, ROOT, Admin, Coordinator, Result, median, stop_process, wait_online


def run(work: Path, n: int, runs: int) -> Result:
    res = Result("real processes", f"{n} real `convoy agent run` processes (own state dir, journal, channel and "
                 f"stream each) and one coordinator subprocess (SQLite) on this machine; the script `echo ok`; "
                 f"time from StartDeployment to status `completed`. Median of {runs} runs each. "
                 f"Salt doing the same, in the same run and timed from the operator's command line: "
                 f"`make bench-peer` (section peer).")
    base = work / "realprocs"
    coord = Coordinator(base / "coordinator")
    coord.bootstrap()
    coord.start()
    agents: list[subprocess.Popen[bytes]] = []
    try:
        admin = Admin(coord.target, coord.token, coord.client_id)
        token = admin.enrollment_token()

        def install(i: int) -> None:
            subprocess.run([*CONVOY, "agent", "install", "--server", coord.target, "--token", token, "--state-dir",
                            str(base / f"agent-{i:03d}"), "--machine-id", f"bench-real-{i:03d}", "--no-service", "--insecure"],
                           check=True, cwd=ROOT, capture_output=True, timeout=120)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(install, range(n)))
        for i in range(n):
            agents.append(subprocess.Popen([*CONVOY, "agent", "run", "--state-dir", str(base / f"agent-{i:03d}"),
                                            "--log-level", "warning"], cwd=ROOT,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_online(coord.sqlite_path, n, 300)
        time.sleep(2.0)
        script = admin.script("echo ok")
        for label, batch, target in (("at once", None, 2.0), ("10% batches", "10%", 4.0)):
            times = []
            for _ in range(runs):
                dep = admin.create(script, batch)
                t0 = time.monotonic()
                admin.start(dep)
                d = admin.wait_done(dep, 300, interval=0.02)
                times.append(time.monotonic() - t0)
                if d.status != "completed" or d.progress.completed != n:
                    raise RuntimeError(f"{label}: ended {d.status} with {d.progress.completed}/{n} completed")
            t = median(times)
            res.add(f"{n} agents, `echo ok`, {label}", f"{t:.2f} s", f"≤ {target:g} s", t <= target)
        admin.close()
    finally:
        for a in agents:
            a.terminate()
        for a in agents:
            stop_process(a, 20)
        coord.stop()
    return res
