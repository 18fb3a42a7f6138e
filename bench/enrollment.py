"""enrollment: enrollments/s. Each is what `convoy agent install` does on the wire (Enroll, then
ReportEnrollment with the device credential), from the simulator process, 64 in flight, against
a fresh coordinator subprocess (SQLite): plaintext on loopback, and with TLS and device
certificates (each enrollment sends a certificate request, the coordinator signs a certificate,
and the report goes over mutual TLS on a connection of its own, as a real install's does)."""

from __future__ import annotations

from pathlib import Path

from bench.common import Admin, Coordinator, Result, Simulator, median


def one_run(work: Path, n: int, i: int, tls: bool = False) -> float:
    name = f"enroll-{'mtls-' if tls else ''}{i}"
    coord = Coordinator(work / name / "coordinator", tls=tls)
    coord.bootstrap()
    coord.start()
    sim = None
    try:
        ca = (coord.data_dir / "tls" / "ca.pem").read_bytes() if tls else None
        admin = Admin(coord.target, coord.token, coord.client_id, ca_pem=ca)
        token = admin.enrollment_token()
        admin.close()
        extra = ("--enroll-concurrency", "64", *(("--device-keys",) if tls else ()))
        sim = Simulator(coord.target, token, n, work / name / "sim", *extra, trust=tuple(coord.trust))
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
    mtls = median([one_run(work, n, i, tls=True) for i in range(runs)])
    res.add("enrollments/s with TLS and device certificates", f"{mtls:,.0f}")
    return res
