"""enrollment: enrollments/s. Each is what `convoy agent install` does on the wire (Enroll, then
ReportEnrollment with the device credential), from the simulator process, 64 in flight, against
a fresh coordinator subprocess (SQLite)."""

from __future__ import annotations

from pathlib import Path

from bench.common import Admin, Coordinator, Result, Simulator, median


def one_run(work: Path, n: int, i: int) -> float:
    coord = Coordinator(work / f"enroll-{i}" / "coordinator")
    coord.bootstrap()
    coord.start()
    sim = None
    try:
        admin = Admin(coord.target, coord.token, coord.client_id)
        token = admin.enrollment_token()
        admin.close()
        sim = Simulator(coord.target, token, n, work / f"enroll-{i}" / "sim", "--enroll-concurrency", "64")
        ev = sim.wait("enrolled", 900)
        return float(ev["per_second"])
    finally:
        if sim is not None:
            sim.stop()
        coord.stop()


def run(work: Path, n: int, runs: int) -> Result:
    res = Result("enrollment", f"{n:,} enrollments (Enroll + ReportEnrollment, each its own transaction; "
                 f"64 in flight from one process) on a fresh coordinator subprocess (SQLite). Median of {runs} runs.")
    rate = median([one_run(work, n, i) for i in range(runs)])
    res.add("enrollments/s", f"{rate:,.0f}", "≥ 200/s", rate >= 200)
    return res
